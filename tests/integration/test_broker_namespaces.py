"""install_broker with non-default namespaces against a real kube-apiserver of its own.

deploy/rbac.yaml names ``kubejit`` and ``kubejit-grants``; a broker configured with other
``brokerNamespace`` / ``grantNamespace`` gets the manifest with those put in. A control plane of this
module's own, because the manifest's cluster-scoped objects (the ClusterRoleBinding, the admission
policy) would otherwise be rewritten under every other test of the session.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import RoleBinding

from kubejit.clusters.adapter import KubeClusterAdapter
from kubejit.clusters.bootstrap import install_broker
from kubejit.errors import ClusterForbidden
from kubejit.testing.clients import admin_client
from kubejit.testing.controlplane import ControlPlane, ControlPlaneBinaries
from tests.broker_identity import token_client
from tests.integration.test_cluster_adapter import make_grant

pytestmark = pytest.mark.integration

BROKER_NAMESPACE = "team-jit"
GRANT_NAMESPACE = "team-jit-grants"


@pytest.fixture(scope="module")
def own_plane(
    tmp_path_factory: pytest.TempPathFactory, control_plane_binaries: ControlPlaneBinaries
) -> Iterator[ControlPlane]:
    plane = ControlPlane(
        tmp_path_factory.mktemp("control-plane-ns"), name="kubejit-test-ns", binaries=control_plane_binaries
    )
    with plane:
        yield plane


@pytest.fixture(scope="module")
def admin(own_plane: ControlPlane) -> Iterator[Client]:
    client = admin_client(own_plane)
    yield client
    client.close()


@pytest.fixture(scope="module")
def adapter(
    own_plane: ControlPlane, admin: Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KubeClusterAdapter]:
    """The broker installed in team-jit, granting from team-jit-grants (install_broker's probe has
    already seen the admission policy refuse this broker identity a stray binding)."""
    out: Path = tmp_path_factory.mktemp("broker-ns") / "broker.kubeconfig"
    installed = install_broker(
        admin,
        cluster=own_plane.name,
        out=out,
        broker_namespace=BROKER_NAMESPACE,
        grant_namespace=GRANT_NAMESPACE,
        token_seconds=3600,
    )
    broker = KubeClusterAdapter.from_kubeconfig(
        own_plane.name,
        kubeconfig=str(installed.kubeconfig_path),
        grant_namespace=GRANT_NAMESPACE,
        audience=own_plane.audience,
    )
    yield broker
    broker.close()


def test_the_broker_grants_from_the_configured_grant_namespace(
    own_plane: ControlPlane, admin: Client, adapter: KubeClusterAdapter
) -> None:
    namespace = f"t-{secrets.token_hex(4)}"
    admin.create(Namespace(metadata=ObjectMeta(name=namespace)))
    grant = make_grant(own_plane.name, (namespace,))
    adapter.ensure_grant_objects(grant)
    try:
        account = admin.get(ServiceAccount, grant.service_account, namespace=GRANT_NAMESPACE)
        assert account.metadata is not None and account.metadata.namespace == GRANT_NAMESPACE
        binding = admin.get(RoleBinding, grant.service_account, namespace=namespace)
        assert [(s.kind, s.namespace) for s in binding.subjects or []] == [
            ("ServiceAccount", GRANT_NAMESPACE)
        ]
        minted = adapter.mint_token(grant, expiration_seconds=600)
        with token_client(own_plane, minted.token, namespace=namespace) as granted:
            assert granted.list(ServiceAccount, namespace=namespace) is not None  # view works
    finally:
        adapter.delete_grant_objects(grant.id)


@pytest.mark.parametrize("namespace", [BROKER_NAMESPACE, GRANT_NAMESPACE])
def test_the_configured_namespaces_are_the_protected_ones(
    namespace: str, own_plane: ControlPlane, adapter: KubeClusterAdapter
) -> None:
    grant = make_grant(own_plane.name, (namespace,))
    with pytest.raises(ClusterForbidden, match="may not grant access inside kubejit's own namespaces"):
        adapter.ensure_grant_objects(grant)
    adapter.delete_grant_objects(grant.id)
