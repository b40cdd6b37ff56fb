"""The broker's own identity on the test control planes, set up exactly as an operator would.

``deploy/rbac.yaml`` is applied with the admin credentials, a token is minted for the
``kubejit-broker`` ServiceAccount, and a kubeconfig holding that token is written: adapters under test
act with the broker's least privilege, never as admin. The control planes themselves
(``control_plane``, ``second_control_plane``) and ``admin_client`` come from the top-level conftest.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, Client, KubeConfig, codecs
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.core_v1 import Namespace, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import ClusterRole, RoleBinding
from lightkube.types import PatchType

from kubejit.clusters.adapter import KubeClusterAdapter
from kubejit.testing.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[2]
RBAC_MANIFEST = REPO / "deploy" / "rbac.yaml"
BROKER_NAMESPACE = "kubejit"
BROKER_ACCOUNT = "kubejit-broker"
GRANT_NAMESPACE = "kubejit-grants"
BROKER_TOKEN_SECONDS = 3600
TEST_FIELD_MANAGER = "kubejit-tests"
ADMISSION_POLICY_WAIT_SECONDS = 30.0
_PROBE_LABELS = {"app.kubernetes.io/managed-by": "kubejit", "kubejit.io/grant": "g0probe"}


@dataclass(frozen=True)
class BrokerIdentity:
    """Where the broker's least-privilege kubeconfig is, for one control plane."""

    plane: ControlPlane
    kubeconfig_path: Path
    grant_namespace: str = GRANT_NAMESPACE

    def adapter(self) -> KubeClusterAdapter:
        return KubeClusterAdapter.from_kubeconfig(
            self.plane.name,
            kubeconfig=str(self.kubeconfig_path),
            grant_namespace=self.grant_namespace,
            audience=self.plane.audience,
        )


def _admin(plane: ControlPlane) -> Client:
    """Cluster-admin, for the operator's setup steps only (tests use the top-level ``admin_client``)."""
    return Client(
        KubeConfig.from_file(plane.kubeconfig_path), field_manager=TEST_FIELD_MANAGER, trust_env=False
    )


def token_client(plane: ControlPlane, token: str, *, namespace: str = "default") -> Client:
    """A lightkube client that authenticates with nothing but ``token`` (a granted user's view)."""
    config = _token_kubeconfig(plane, token=token, user="token-user", namespace=namespace)
    return Client(KubeConfig.from_dict(config), trust_env=False)


def ensure_namespace(admin: Client, name: str) -> None:
    try:
        admin.create(Namespace(metadata=ObjectMeta(name=name)))
    except ApiError as e:
        if e.status.code != 409:
            raise


def aggregate_cluster_roles(admin: Client) -> None:
    """Fill the aggregated ClusterRoles (view, edit, admin) as kube-controller-manager's
    clusterrole-aggregation controller would: the test control plane runs no controller-manager,
    so without this `view` holds no rules at all and a granted token could read nothing."""
    for role in list(admin.list(ClusterRole)):
        if role.aggregationRule is None or role.metadata is None or role.metadata.name is None:
            continue
        rules: list[dict[str, Any]] = []
        for selector in role.aggregationRule.clusterRoleSelectors or []:
            for part in admin.list(ClusterRole, labels=dict(selector.matchLabels or {})):
                rules.extend(rule.to_dict() for rule in part.rules or [])
        admin.patch(ClusterRole, role.metadata.name, {"rules": rules}, patch_type=PatchType.MERGE)


def set_up_broker(plane: ControlPlane, directory: Path) -> BrokerIdentity:
    """Namespaces, deploy/rbac.yaml, a broker token, and a kubeconfig holding it (mode 0600)."""
    with _admin(plane) as admin:
        for name in (BROKER_NAMESPACE, GRANT_NAMESPACE):
            ensure_namespace(admin, name)
        aggregate_cluster_roles(admin)
        for obj in codecs.load_all_yaml(RBAC_MANIFEST.read_text()):
            admin.apply(obj, field_manager=TEST_FIELD_MANAGER, force=True)
        request = ServiceAccount.Token(
            metadata=ObjectMeta(name=BROKER_ACCOUNT),
            spec=TokenRequestSpec(audiences=[], expirationSeconds=BROKER_TOKEN_SECONDS),
        )
        answer = admin.create(request, BROKER_ACCOUNT, namespace=BROKER_NAMESPACE)
    assert answer.status is not None and answer.status.token
    path = directory / f"{plane.name}-broker.kubeconfig"
    document = _token_kubeconfig(
        plane, token=answer.status.token, user=BROKER_ACCOUNT, namespace=BROKER_NAMESPACE
    )
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with Client(KubeConfig.from_file(path), trust_env=False) as broker:
        _wait_for_admission_policy(broker)
    return BrokerIdentity(plane=plane, kubeconfig_path=path)


def _wait_for_admission_policy(broker: Client) -> None:
    """The API server loads a new ValidatingAdmissionPolicy asynchronously: poll (bounded) with a
    dry-run binding it must refuse, so no test runs before the guard rails are in force."""
    stray = RoleBinding(
        metadata=ObjectMeta(name="kubejit-g0probe", namespace="default", labels=_PROBE_LABELS),
        roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
        subjects=[Subject(kind="User", name="mallory", apiGroup="rbac.authorization.k8s.io")],
    )
    deadline = time.monotonic() + ADMISSION_POLICY_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            broker.create(stray, dry_run=True)
        except ApiError as e:
            if "ValidatingAdmissionPolicy" in (e.status.message or ""):
                return
            raise
        time.sleep(0.2)
    raise AssertionError("the kubejit-broker-bindings admission policy never took effect")


def _token_kubeconfig(plane: ControlPlane, *, token: str, user: str, namespace: str) -> dict[str, Any]:
    ca = base64.b64encode(Path(plane.ca_path).read_bytes()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": plane.name, "cluster": {"server": plane.server, "certificate-authority-data": ca}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": plane.name, "context": {"cluster": plane.name, "user": user, "namespace": namespace}}
        ],
        "current-context": plane.name,
    }


@pytest.fixture(scope="session")
def broker_identity(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> BrokerIdentity:
    return set_up_broker(control_plane, tmp_path_factory.mktemp("broker"))


@pytest.fixture(scope="session")
def second_broker_identity(
    second_control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> BrokerIdentity:
    return set_up_broker(second_control_plane, tmp_path_factory.mktemp("broker2"))


@pytest.fixture
def broker_adapter(broker_identity: BrokerIdentity) -> Iterator[KubeClusterAdapter]:
    adapter = broker_identity.adapter()
    yield adapter
    adapter.close()


@pytest.fixture
def second_broker_adapter(second_broker_identity: BrokerIdentity) -> Iterator[KubeClusterAdapter]:
    adapter = second_broker_identity.adapter()
    yield adapter
    adapter.close()


@pytest.fixture(scope="session")
def broker_kubeconfig(broker_identity: BrokerIdentity) -> Path:
    """The broker's least-privilege kubeconfig for ``control_plane`` (a token, never a certificate)."""
    return broker_identity.kubeconfig_path


@pytest.fixture(scope="session")
def grant_namespace(broker_identity: BrokerIdentity) -> str:
    return broker_identity.grant_namespace


@pytest.fixture(scope="session")
def token_client_for() -> Callable[[ControlPlane, str], Client]:
    """``token_client_for(plane, token)``: a client that holds nothing but ``token``."""
    return token_client
