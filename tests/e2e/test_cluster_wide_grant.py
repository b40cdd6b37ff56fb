"""A policy role with `clusterScope: true`, requested with no namespace: one ClusterRoleBinding, and a
token that can do cluster-wide what the role allows and nothing else. Real broker, CLI, kubectl, API server.

The broker needs deploy/rbac.yaml's OPTIONAL ClusterRole for ClusterRoleBindings, and the admission
policy must list the role in `clusterWideRoles`; the fixture does both as an operator would (the
commented documents of the shipped manifest, uncommented) and undoes them afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lightkube import ApiError, Client, KubeConfig, codecs
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.admissionregistration_v1 import ValidatingAdmissionPolicy
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding

from kubejit.clusters.bootstrap import rbac_manifest
from kubejit.clusters.broker_manifest import BROKER_POLICY
from kubejit.clusters.objects import object_name, ownership_labels
from kubejit.ids import GrantId
from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.kubectl import KubectlResult, RedactedToken, kubectl_with_token
from tests.broker_identity import GRANT_NAMESPACE, BrokerIdentity
from tests.broker_process import E2E_POLICY, Broker
from tests.e2e.conftest import owned_objects
from tests.polling import eventually

pytestmark = pytest.mark.e2e

POLICY = (
    E2E_POLICY.replace(
        "  admin: {clusterRole: admin}\n",
        "  admin: {clusterRole: admin}\n  reader: {clusterRole: view, clusterScope: true}\n",
    )
    + """\
  - name: cluster-read
    groups: [developers]
    clusters: ["*"]
    roles: [reader]
    duration: {default: 30m, max: 1h}
    approval: auto
"""
)


def optional_rbac() -> list[codecs.AnyResource]:
    """The commented-out OPTIONAL documents at the end of deploy/rbac.yaml, uncommented."""
    text = rbac_manifest()
    tail = text[text.index("# OPTIONAL") :].splitlines()
    start = next(i for i, line in enumerate(tail) if line.strip() == "# ---")
    body = "\n".join(line.removeprefix("#").removeprefix(" ") for line in tail[start:])
    return list(codecs.load_all_yaml(body))


def admission_policy(*, cluster_wide_roles: str) -> ValidatingAdmissionPolicy:
    """The shipped admission policy, with its `clusterWideRoles` variable set as an operator would."""
    (policy,) = [
        o
        for o in codecs.load_all_yaml(rbac_manifest())
        if isinstance(o, ValidatingAdmissionPolicy) and o.metadata and o.metadata.name == BROKER_POLICY
    ]
    assert isinstance(policy, ValidatingAdmissionPolicy)
    assert policy.spec is not None and policy.spec.variables is not None
    (variable,) = (v for v in policy.spec.variables if v.name == "clusterWideRoles")
    variable.expression = cluster_wide_roles
    return policy


def broker_may_bind_view_cluster_wide(broker: Client) -> bool:
    """A server-side dry run, as the broker, of the binding a `reader` grant makes."""
    grant_id = GrantId("g000000000000")
    probe = ClusterRoleBinding(
        metadata=ObjectMeta(name=object_name(grant_id), labels=ownership_labels(grant_id)),
        roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
        subjects=[Subject(kind="ServiceAccount", name=object_name(grant_id), namespace=GRANT_NAMESPACE)],
    )
    try:
        broker.create(probe, dry_run=True)
    except ApiError:
        return False
    return True


@pytest.fixture
def cluster_scope_rbac(admin_client: Client, broker_identity: BrokerIdentity) -> Iterator[None]:
    objects = optional_rbac()
    assert sorted(type(o).__name__ for o in objects) == ["ClusterRole", "ClusterRoleBinding"]
    for obj in objects:
        admin_client.apply(obj, field_manager="kubejit-e2e", force=True)
    admin_client.apply(
        admission_policy(cluster_wide_roles="['view']"), field_manager="kubejit-e2e", force=True
    )
    broker = Client(KubeConfig.from_file(broker_identity.kubeconfig_path), trust_env=False)
    try:
        # The API server enforces a changed admission policy once its informer has seen it.
        eventually(lambda: broker_may_bind_view_cluster_wide(broker), what="clusterWideRoles in force")
        yield
    finally:
        broker.close()
        admin_client.apply(admission_policy(cluster_wide_roles="[]"), field_manager="kubejit-e2e", force=True)
        admin_client.delete(ClusterRoleBinding, "kubejit-broker-cluster-scope")
        admin_client.delete(ClusterRole, "kubejit-broker-cluster-scope")


@pytest.fixture
def wide_broker(
    tmp_path: Path,
    broker_identity: BrokerIdentity,
    second_broker_identity: BrokerIdentity,
    cluster_scope_rbac: None,
) -> Iterator[Broker]:
    running = Broker(tmp_path / "broker", [broker_identity, second_broker_identity], policy=POLICY)
    running.workdir.mkdir()
    running.start()
    yield running
    running.stop()


def kubectl(plane: ControlPlane, token: str, *args: str) -> KubectlResult:
    return kubectl_with_token(list(args), server=plane.server, ca_path=plane.ca_path, token=token)


def cluster_bindings(admin: Client, grant_id: str) -> list[str]:
    labels = {"app.kubernetes.io/managed-by": "kubejit", "kubejit.io/grant": grant_id}
    return [
        b.metadata.name
        for b in admin.list(ClusterRoleBinding, labels=dict(labels))
        if b.metadata and b.metadata.name
    ]


def test_a_cluster_wide_role_reads_every_namespace_and_nothing_more(
    wide_broker: Broker,
    control_plane: ControlPlane,
    second_control_plane: ControlPlane,
    namespaces: Callable[..., list[str]],
    admin_client: Client,
) -> None:
    first, second = namespaces(control_plane, 2)
    wide_broker.login("alice")
    grant = wide_broker.json(
        "alice", "request", "-c", control_plane.name, "-r", "reader", "--reason", "audit", "--use"
    )
    assert (grant["state"], grant["rule"], grant["namespaces"]) == ("active", "cluster-read", [])
    assert cluster_bindings(admin_client, grant["id"]) == [f"kubejit-{grant['id']}"]
    assert owned_objects(admin_client, grant["id"]) == [
        f"ServiceAccount/kubejit-{grant['id']}"
    ]  # no RoleBinding
    token = RedactedToken(wide_broker.grant_token("alice", grant["id"]))

    # What view allows, in every namespace at once...
    assert kubectl(control_plane, token, "get", "pods", "--all-namespaces").ok
    assert kubectl(control_plane, token, "get", "configmaps", "-n", first).ok
    assert kubectl(control_plane, token, "get", "deployments", "-n", second).ok
    # ...and nothing view does not: no writes, no Secrets, no cluster-scoped resources, no other cluster.
    assert kubectl(control_plane, token, "create", "configmap", "x", "-n", first).forbidden
    assert kubectl(control_plane, token, "delete", "namespace", second).forbidden
    assert kubectl(control_plane, token, "get", "secrets", "--all-namespaces").forbidden
    assert kubectl(control_plane, token, "get", "nodes").forbidden
    assert kubectl(control_plane, token, "get", "clusterrolebindings").forbidden
    assert kubectl(second_control_plane, token, "get", "pods", "--all-namespaces").unauthorized

    # `--use` wrote a context for it: kubectl works through kubejit's credential plugin.
    through_plugin = wide_broker.kubectl(
        "alice", "--context", f"jit-{control_plane.name}-cluster-wide", "get", "pods", "-A"
    )
    assert through_plugin.returncode == 0, through_plugin.stderr

    ended = wide_broker.json("alice", "revoke", grant["id"], "--reason", "done")
    assert ended["state"] == "revoked"
    assert (
        cluster_bindings(admin_client, grant["id"]) == [] and owned_objects(admin_client, grant["id"]) == []
    )
    eventually(
        lambda: kubectl(control_plane, token, "get", "pods", "--all-namespaces").unauthorized,
        what="token rejected",
    )


def test_the_wrong_shape_of_request_is_refused_and_creates_nothing(
    wide_broker: Broker,
    control_plane: ControlPlane,
    namespaces: Callable[..., list[str]],
    admin_client: Client,
) -> None:
    (ns,) = namespaces(control_plane, 1)
    wide_broker.login("alice", "bob")
    before = owned_objects(admin_client)
    cases = [
        (("alice", "-r", "reader", "-n", ns), 2, "is cluster-wide; a request for it names no namespaces"),
        (("alice", "-r", "view"), 2, "needs at least one namespace"),
        (("bob", "-r", "reader"), 3, "default-deny"),  # bob (sre) has no rule for it
    ]
    for (user, *args), code, words in cases:
        done = wide_broker.cli(user, "request", "-c", control_plane.name, *args, check=False)
        assert done.returncode == code, (args, done.returncode, done.stderr)
        assert words in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
    assert owned_objects(admin_client) == before
    labels = {"app.kubernetes.io/managed-by": "kubejit"}
    assert list(admin_client.list(ClusterRoleBinding, labels=dict(labels))) == []
    assert wide_broker.json("alice", "grants") == [] and wide_broker.json("bob", "grants") == []
