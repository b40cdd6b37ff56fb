"""KubeClusterAdapter against a real kube-apiserver, acting with the broker's least-privilege identity.

Everything the broker does here it does with the token of deploy/rbac.yaml's ServiceAccount; the
admin client only arranges namespaces and checks the results.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, Client, KubeConfig
from lightkube.core.client import LabelSelector
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.certificates_v1 import CertificateSigningRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import PolicyRule, Subject
from lightkube.models.rbac_v1 import RoleRef as KubeRoleRef
from lightkube.resources.certificates_v1 import CertificateSigningRequest
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod, Secret, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding, Role, RoleBinding

from kubejit.clusters.adapter import KubeClusterAdapter
from kubejit.clusters.registry import ClusterRegistry, build_adapter
from kubejit.errors import (
    ClusterConflict,
    ClusterError,
    ClusterForbidden,
    ClusterUnavailable,
    ConfigError,
    NotFound,
)
from kubejit.grants.model import Grant, GrantState
from kubejit.grants.ports import ClusterAdapter, OwnedObject
from kubejit.ids import ClusterName, GrantId, NamespaceName, PrincipalName
from kubejit.policy.model import RoleRef
from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.processes import free_port
from tests.broker_identity import token_client
from tests.polling import poll

pytestmark = pytest.mark.integration

#: deploy/rbac.yaml's grant namespace, where the broker_adapter fixture puts grant accounts.
GRANT_NAMESPACE = "kubejit-grants"
VIEW = RoleRef(name="view", kind="ClusterRole", ref_name="view")
GRANT_LABEL = "kubejit.io/grant"
#: kube-apiserver caches a successful token authentication for 10 s; give revocation ample room.
REVOCATION_POLL_SECONDS = 60.0


def make_grant(cluster: str, namespaces: tuple[str, ...], *, role: RoleRef = VIEW) -> Grant:
    now = datetime.now(UTC)
    return Grant(
        id=GrantId("g" + secrets.token_hex(6)),
        requester=PrincipalName("alice@example.com"),
        cluster=ClusterName(cluster),
        namespaces=tuple(NamespaceName(ns) for ns in namespaces),
        role=role,
        duration=timedelta(hours=1),
        reason="integration test",
        ticket=None,
        state=GrantState.APPROVED,
        rule="test-rule",
        created_at=now,
        pending_until=now + timedelta(hours=1),
    )


@pytest.fixture
def namespaces(admin_client: Client) -> tuple[str, str, str]:
    """Three fresh namespaces: two to grant, one to stay out of reach."""
    names = tuple(f"t-{secrets.token_hex(4)}" for _ in range(3))
    for name in names:
        admin_client.create(Namespace(metadata=ObjectMeta(name=name)))
    return names[0], names[1], names[2]


@pytest.fixture
def grant(
    control_plane: ControlPlane, namespaces: tuple[str, str, str], broker_adapter: KubeClusterAdapter
) -> Iterator[Grant]:
    """A view grant on the first two namespaces; its objects are removed after the test."""
    made = make_grant(control_plane.name, namespaces[:2])
    yield made
    broker_adapter.delete_grant_objects(made.id)


def objects_of(admin: Client, grant_id: str) -> set[tuple[str, str | None, str]]:
    """What the cluster holds for one grant, as (kind, namespace, name), seen by cluster-admin."""
    selector: LabelSelector = {GRANT_LABEL: grant_id}
    found: set[tuple[str, str | None, str]] = set()
    for sa in admin.list(ServiceAccount, namespace="*", labels=selector):
        found.add(("ServiceAccount", _meta(sa).namespace, _meta(sa).name or ""))
    for rb in admin.list(RoleBinding, namespace="*", labels=selector):
        found.add(("RoleBinding", _meta(rb).namespace, _meta(rb).name or ""))
    for crb in admin.list(ClusterRoleBinding, labels=selector):
        found.add(("ClusterRoleBinding", None, _meta(crb).name or ""))
    return found


def _meta(obj: Any) -> ObjectMeta:
    assert obj.metadata is not None
    meta: ObjectMeta = obj.metadata
    return meta


def expected_objects(grant: Grant) -> set[tuple[str, str | None, str]]:
    name = f"kubejit-{grant.id}"
    return {
        ("ServiceAccount", GRANT_NAMESPACE, name),
        *(("RoleBinding", ns, name) for ns in grant.namespaces),
    }


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


TokenClientFor = Callable[[ControlPlane, str], Client]


def wait_until_rejected(client: Client, namespace: str) -> int:
    """Poll (bounded) until the API server refuses the client's token; return the final status code."""

    def status() -> int:
        try:
            list(client.list(Pod, namespace=namespace))
        except ApiError as e:
            return e.status.code or 0
        return 200

    with client:
        return poll(status, lambda code: code != 200, within=REVOCATION_POLL_SECONDS)


# -- creating a grant's objects --------------------------------------------------------------------
def test_the_broker_adapter_is_a_cluster_adapter(broker_adapter: KubeClusterAdapter) -> None:
    adapter: ClusterAdapter = broker_adapter  # checked by mypy: the port is implemented
    assert adapter.name == broker_adapter.name


def test_ensure_creates_a_labelled_account_and_one_binding_per_namespace(
    broker_adapter: KubeClusterAdapter, admin_client: Client, grant: Grant
) -> None:
    broker_adapter.ensure_grant_objects(grant)

    assert objects_of(admin_client, grant.id) == expected_objects(grant)
    sa = admin_client.get(ServiceAccount, f"kubejit-{grant.id}", namespace=GRANT_NAMESPACE)
    assert _meta(sa).labels == {"app.kubernetes.io/managed-by": "kubejit", GRANT_LABEL: grant.id}
    assert (_meta(sa).annotations or {})["kubejit.io/requester"] == "alice@example.com"
    for ns in grant.namespaces:
        rb = admin_client.get(RoleBinding, f"kubejit-{grant.id}", namespace=ns)
        assert rb.roleRef.kind == "ClusterRole" and rb.roleRef.name == "view"
        assert [(s.kind, s.name, s.namespace) for s in rb.subjects or []] == [
            ("ServiceAccount", f"kubejit-{grant.id}", GRANT_NAMESPACE)
        ]


def test_ensure_is_idempotent(broker_adapter: KubeClusterAdapter, admin_client: Client, grant: Grant) -> None:
    broker_adapter.ensure_grant_objects(grant)
    uid = _meta(admin_client.get(ServiceAccount, f"kubejit-{grant.id}", namespace=GRANT_NAMESPACE)).uid

    broker_adapter.ensure_grant_objects(grant)

    assert objects_of(admin_client, grant.id) == expected_objects(grant)
    assert (
        _meta(admin_client.get(ServiceAccount, f"kubejit-{grant.id}", namespace=GRANT_NAMESPACE)).uid == uid
    )


def test_ensure_restores_a_binding_deleted_out_of_band(
    broker_adapter: KubeClusterAdapter, admin_client: Client, grant: Grant
) -> None:
    broker_adapter.ensure_grant_objects(grant)
    admin_client.delete(RoleBinding, f"kubejit-{grant.id}", namespace=grant.namespaces[1])

    broker_adapter.ensure_grant_objects(grant)

    assert objects_of(admin_client, grant.id) == expected_objects(grant)


# -- tokens ------------------------------------------------------------------------------------------
def test_minted_token_reaches_granted_namespaces_only_and_only_to_read(
    broker_adapter: KubeClusterAdapter,
    control_plane: ControlPlane,
    grant: Grant,
    namespaces: tuple[str, str, str],
    token_client_for: TokenClientFor,
) -> None:
    broker_adapter.ensure_grant_objects(grant)
    before = datetime.now(UTC)

    minted = broker_adapter.mint_token(grant, expiration_seconds=900)

    assert abs(minted.expires_at - (before + timedelta(seconds=900))) < timedelta(seconds=60)
    claims = claims_of(minted.token)
    assert minted.token_id == claims["jti"]
    assert claims["aud"] == [control_plane.audience]
    assert claims["sub"] == f"system:serviceaccount:{GRANT_NAMESPACE}:kubejit-{grant.id}"
    granted_a, granted_b, other = namespaces
    with token_client_for(control_plane, minted.token) as user:
        assert list(user.list(Pod, namespace=granted_a)) == []
        assert list(user.list(Pod, namespace=granted_b)) == []
        with pytest.raises(ApiError) as outside:
            list(user.list(Pod, namespace=other))
        assert outside.value.status.code == 403
        with pytest.raises(ApiError) as write:
            user.create(ConfigMap(metadata=ObjectMeta(name="nope"), data={"a": "b"}), namespace=granted_a)
        assert write.value.status.code == 403


def test_a_token_for_an_account_that_does_not_exist_is_a_clear_error(
    broker_adapter: KubeClusterAdapter, grant: Grant
) -> None:
    with pytest.raises(ClusterError, match=f"grant {grant.id} has no ServiceAccount"):
        broker_adapter.mint_token(grant, expiration_seconds=600)


def test_a_token_of_one_cluster_is_refused_by_another(
    broker_adapter: KubeClusterAdapter,
    grant: Grant,
    second_control_plane: ControlPlane,
    token_client_for: TokenClientFor,
) -> None:
    broker_adapter.ensure_grant_objects(grant)
    minted = broker_adapter.mint_token(grant, expiration_seconds=600)

    with (
        token_client_for(second_control_plane, minted.token) as elsewhere,
        pytest.raises(ApiError) as refused,
    ):
        list(elsewhere.list(Pod, namespace="default"))
    assert refused.value.status.code == 401


# -- deleting -----------------------------------------------------------------------------------------
def test_delete_removes_everything_is_idempotent_and_kills_the_token(
    broker_adapter: KubeClusterAdapter,
    control_plane: ControlPlane,
    admin_client: Client,
    grant: Grant,
    token_client_for: TokenClientFor,
) -> None:
    broker_adapter.ensure_grant_objects(grant)
    minted = broker_adapter.mint_token(grant, expiration_seconds=3600)

    broker_adapter.delete_grant_objects(grant.id)
    broker_adapter.delete_grant_objects(grant.id)

    assert objects_of(admin_client, grant.id) == set()
    assert wait_until_rejected(token_client_for(control_plane, minted.token), grant.namespaces[0]) == 401


def test_delete_of_a_grant_that_never_existed_is_fine(broker_adapter: KubeClusterAdapter) -> None:
    broker_adapter.delete_grant_objects(GrantId("g000000000000"))


# -- what kubejit owns ---------------------------------------------------------------------------------
def test_list_owned_finds_exactly_what_exists(
    broker_adapter: KubeClusterAdapter,
    admin_client: Client,
    control_plane: ControlPlane,
    grant: Grant,
    namespaces: tuple[str, str, str],
) -> None:
    other = make_grant(control_plane.name, (namespaces[2],))
    broker_adapter.ensure_grant_objects(grant)
    broker_adapter.ensure_grant_objects(other)
    try:
        owned = broker_adapter.list_owned()
        admin_client.delete(RoleBinding, f"kubejit-{other.id}", namespace=namespaces[2])
        after_loss = broker_adapter.list_owned()
    finally:
        broker_adapter.delete_grant_objects(other.id)

    def mine(objs: list[OwnedObject], *ids: str) -> set[tuple[str, str | None, str, str]]:
        return {(o.kind, o.namespace, o.name, o.grant_id) for o in objs if o.grant_id in ids}

    def expected(*grants: Grant) -> set[tuple[str, str | None, str, str]]:
        return {(kind, ns, name, g.id) for g in grants for kind, ns, name in expected_objects(g)}

    assert mine(owned, grant.id, other.id) == expected(grant, other)
    lost = ("RoleBinding", namespaces[2], f"kubejit-{other.id}", other.id)
    assert mine(after_loss, grant.id, other.id) == expected(grant, other) - {lost}
    assert not mine(broker_adapter.list_owned(), other.id)


def test_list_owned_agrees_with_what_cluster_admin_sees(
    broker_adapter: KubeClusterAdapter, admin_client: Client, grant: Grant
) -> None:
    broker_adapter.ensure_grant_objects(grant)
    owned: set[tuple[str, str | None, str | None]] = {
        (o.kind, o.namespace, o.name) for o in broker_adapter.list_owned()
    }
    selector: LabelSelector = {"app.kubernetes.io/managed-by": "kubejit"}
    seen: set[tuple[str, str | None, str | None]] = {
        ("ServiceAccount", GRANT_NAMESPACE, _meta(o).name)
        for o in admin_client.list(ServiceAccount, namespace=GRANT_NAMESPACE, labels=selector)
    }
    seen |= {
        ("RoleBinding", _meta(o).namespace, _meta(o).name)
        for o in admin_client.list(RoleBinding, namespace="*", labels=selector)
    }
    assert owned == seen


def test_list_owned_ignores_objects_whose_grant_label_kubejit_cannot_have_made(
    broker_adapter: KubeClusterAdapter, admin_client: Client
) -> None:
    labels = {"app.kubernetes.io/managed-by": "kubejit", GRANT_LABEL: "Not_A_Grant"}
    name = f"impostor-{secrets.token_hex(4)}"
    admin_client.create(
        ServiceAccount(metadata=ObjectMeta(name=name, namespace=GRANT_NAMESPACE, labels=labels))
    )
    try:
        assert not [o for o in broker_adapter.list_owned() if o.name == name]
    finally:
        admin_client.delete(ServiceAccount, name, namespace=GRANT_NAMESPACE)


# -- what the broker must not be able to do, and failures that leave nothing behind ----------------------
def test_the_broker_cannot_bind_cluster_admin_and_leaves_nothing_behind(
    broker_adapter: KubeClusterAdapter,
    admin_client: Client,
    control_plane: ControlPlane,
    namespaces: tuple[str, str, str],
) -> None:
    root = RoleRef(name="root", kind="ClusterRole", ref_name="cluster-admin")
    grant = make_grant(control_plane.name, namespaces[:2], role=root)

    with pytest.raises(ClusterForbidden) as refused:
        broker_adapter.ensure_grant_objects(grant)

    assert f"RoleBinding {namespaces[0]}/kubejit-{grant.id}" in refused.value.message
    assert refused.value.hint is not None and "deploy/rbac.yaml" in refused.value.hint
    assert objects_of(admin_client, grant.id) == set()


def test_a_cluster_scoped_grant_is_refused_without_the_optional_rbac(
    broker_adapter: KubeClusterAdapter, admin_client: Client, control_plane: ControlPlane
) -> None:
    wide = RoleRef(name="reader", kind="ClusterRole", ref_name="view", cluster_scope=True)
    grant = make_grant(control_plane.name, (), role=wide)

    with pytest.raises(ClusterForbidden, match="ClusterRoleBinding"):
        broker_adapter.ensure_grant_objects(grant)

    assert objects_of(admin_client, grant.id) == set()
    broker_adapter.delete_grant_objects(grant.id)  # no ClusterRoleBinding rights: still a clean no-op


def test_a_missing_target_namespace_is_named_and_nothing_is_created(
    broker_adapter: KubeClusterAdapter,
    admin_client: Client,
    control_plane: ControlPlane,
    namespaces: tuple[str, str, str],
) -> None:
    grant = make_grant(control_plane.name, (namespaces[0], "no-such-namespace"))

    with pytest.raises(ClusterError) as missing:
        broker_adapter.ensure_grant_objects(grant)

    assert (
        missing.value.message
        == f"namespace 'no-such-namespace' does not exist in cluster '{control_plane.name}'"
    )
    assert objects_of(admin_client, grant.id) == set()


def test_a_stray_object_with_the_grants_name_is_a_conflict_and_is_left_alone(
    broker_adapter: KubeClusterAdapter, admin_client: Client, grant: Grant
) -> None:
    name = f"kubejit-{grant.id}"
    stray = RoleBinding(
        metadata=ObjectMeta(name=name, namespace=grant.namespaces[1]),
        roleRef=KubeRoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="edit"),
        subjects=[Subject(kind="ServiceAccount", name=name, namespace=GRANT_NAMESPACE)],
    )
    admin_client.create(stray)
    try:
        with pytest.raises(ClusterConflict, match="already exists"):
            broker_adapter.ensure_grant_objects(grant)
        # what this call created is gone; the stray binding (not kubejit's) is untouched
        assert objects_of(admin_client, grant.id) == set()
        kept = admin_client.get(RoleBinding, name, namespace=grant.namespaces[1])
        assert kept.roleRef.name == "edit"
    finally:
        admin_client.delete(RoleBinding, name, namespace=grant.namespaces[1])


def test_the_broker_cannot_grant_access_inside_kubejits_own_namespaces(
    broker_adapter: KubeClusterAdapter, admin_client: Client, control_plane: ControlPlane
) -> None:
    grant = make_grant(control_plane.name, (GRANT_NAMESPACE,))

    with pytest.raises(
        ClusterForbidden, match="may not grant access inside kubejit's own namespaces"
    ) as refused:
        broker_adapter.ensure_grant_objects(grant)

    assert refused.value.hint is not None and "admission policy" in refused.value.hint
    assert objects_of(admin_client, grant.id) == set()


def test_a_stolen_broker_token_cannot_bind_a_role_to_anyone_else(
    broker_kubeconfig: Path, namespaces: tuple[str, str, str]
) -> None:
    """`bind` on admin would allow it; the admission policy of deploy/rbac.yaml does not."""
    grant_id = "g" + secrets.token_hex(6)
    to_mallory = RoleBinding(
        metadata=ObjectMeta(
            name=f"kubejit-{grant_id}",
            namespace=namespaces[0],
            labels={"app.kubernetes.io/managed-by": "kubejit", GRANT_LABEL: grant_id},
        ),
        roleRef=KubeRoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="admin"),
        subjects=[Subject(kind="User", name="mallory", apiGroup="rbac.authorization.k8s.io")],
    )
    with Client(KubeConfig.from_file(broker_kubeconfig), trust_env=False) as stolen:
        with pytest.raises(ApiError) as refused:
            stolen.create(to_mallory)
        assert refused.value.status.code == 403
        assert "only bind its own grant's ServiceAccount" in (refused.value.status.message or "")


def test_a_stolen_broker_token_cannot_delete_bindings_kubejit_did_not_make(
    broker_kubeconfig: Path, admin_client: Client, namespaces: tuple[str, str, str]
) -> None:
    theirs = RoleBinding(
        metadata=ObjectMeta(name="team-readers", namespace=namespaces[0]),
        roleRef=KubeRoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
        subjects=[Subject(kind="Group", name="team", apiGroup="rbac.authorization.k8s.io")],
    )
    admin_client.create(theirs)
    with Client(KubeConfig.from_file(broker_kubeconfig), trust_env=False) as stolen:
        with pytest.raises(ApiError) as refused:
            stolen.delete(RoleBinding, "team-readers", namespace=namespaces[0])
        assert refused.value.status.code == 403
    assert admin_client.get(RoleBinding, "team-readers", namespace=namespaces[0])


def test_a_grant_for_another_cluster_is_refused(
    broker_adapter: KubeClusterAdapter, admin_client: Client, namespaces: tuple[str, str, str]
) -> None:
    grant = make_grant("some-other-cluster", namespaces[:1])
    with pytest.raises(ClusterError, match="is for cluster 'some-other-cluster'"):
        broker_adapter.ensure_grant_objects(grant)
    assert objects_of(admin_client, grant.id) == set()


def test_a_missing_grant_namespace_points_at_the_setup(
    broker_kubeconfig: Path, control_plane: ControlPlane, namespaces: tuple[str, str, str]
) -> None:
    adapter = KubeClusterAdapter.from_kubeconfig(
        control_plane.name,
        kubeconfig=str(broker_kubeconfig),
        grant_namespace="kubejit-nowhere",
        audience=control_plane.audience,
    )
    with adapter, pytest.raises(ClusterForbidden) as refused:
        adapter.ensure_grant_objects(make_grant(control_plane.name, namespaces[:1]))
    assert refused.value.hint is not None and "grant namespace must exist" in refused.value.hint


def test_an_unreachable_cluster_is_transient(broker_kubeconfig: Path, tmp_path: Path) -> None:
    config = yaml.safe_load(broker_kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    path = tmp_path / "unreachable.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    adapter = KubeClusterAdapter.from_kubeconfig(
        "unreachable", kubeconfig=str(path), grant_namespace=GRANT_NAMESPACE, audience=None
    )
    with adapter, pytest.raises(ClusterUnavailable, match="cannot reach cluster 'unreachable'"):
        adapter.list_owned()


# -- what kubeconfig generation and request validation use ---------------------------------------------
def test_server_info_is_what_reaches_the_cluster(
    broker_adapter: KubeClusterAdapter, control_plane: ControlPlane
) -> None:
    server, ca_data = broker_adapter.server_info()
    assert server == control_plane.server
    assert ca_data is not None and base64.b64decode(ca_data) == Path(control_plane.ca_path).read_bytes()


def test_namespace_exists(broker_adapter: KubeClusterAdapter, namespaces: tuple[str, str, str]) -> None:
    assert broker_adapter.namespace_exists(namespaces[0])
    assert not broker_adapter.namespace_exists("no-such-namespace")


def test_a_cluster_with_an_unexpected_certificate_is_not_retried(
    broker_kubeconfig: Path, second_control_plane: ControlPlane, tmp_path: Path
) -> None:
    config = yaml.safe_load(broker_kubeconfig.read_text())
    wrong_ca = base64.b64encode(Path(second_control_plane.ca_path).read_bytes()).decode()
    config["clusters"][0]["cluster"]["certificate-authority-data"] = wrong_ca
    path = tmp_path / "wrong-ca.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    adapter = KubeClusterAdapter.from_kubeconfig(
        "impostor", kubeconfig=str(path), grant_namespace=GRANT_NAMESPACE, audience=None
    )
    with adapter, pytest.raises(ClusterError) as refused:
        adapter.list_owned()
    assert not isinstance(refused.value, ClusterUnavailable)
    assert "cannot verify the TLS certificate of cluster 'impostor'" in refused.value.message


# -- building adapters from configuration ------------------------------------------------------------------
def test_build_adapter_from_a_kubeconfig_reaches_the_cluster(
    broker_kubeconfig: Path, control_plane: ControlPlane
) -> None:
    adapter = build_adapter(
        control_plane.name,
        kubeconfig=str(broker_kubeconfig),
        context=control_plane.name,
        in_cluster=False,
        grant_namespace=GRANT_NAMESPACE,
        audience=control_plane.audience,
    )
    with adapter:
        assert adapter.namespace_exists(GRANT_NAMESPACE)


@pytest.mark.parametrize(
    ("kubeconfig", "context", "in_cluster", "message"),
    [
        (None, None, False, "neither a kubeconfig nor in_cluster"),
        ("BROKER", None, True, "both a kubeconfig and in_cluster"),
        (None, "ctx", True, "sets a context"),
        ("BROKER", "no-such-context", False, "Context 'no-such-context' not found"),
        ("/nonexistent/kubeconfig", None, False, "cannot use kubeconfig '/nonexistent/kubeconfig'"),
        (None, None, True, "not running in a pod"),
    ],
)
def test_build_adapter_refuses_bad_configuration(
    broker_kubeconfig: Path, kubeconfig: str | None, context: str | None, in_cluster: bool, message: str
) -> None:
    path = str(broker_kubeconfig) if kubeconfig == "BROKER" else kubeconfig
    with pytest.raises(ConfigError, match=message):
        build_adapter(
            "c1", kubeconfig=path, context=context, in_cluster=in_cluster, grant_namespace="g", audience=None
        )


def test_the_registry_names_the_known_clusters_when_one_is_unknown(
    broker_adapter: KubeClusterAdapter, second_broker_adapter: KubeClusterAdapter
) -> None:
    registry = ClusterRegistry([broker_adapter, second_broker_adapter])

    assert registry.adapter(broker_adapter.name) is broker_adapter
    assert registry[second_broker_adapter.name] is second_broker_adapter
    assert registry.names == sorted([broker_adapter.name, second_broker_adapter.name])
    with pytest.raises(NotFound) as unknown:
        registry.adapter("prod")
    assert unknown.value.message == (
        f"unknown cluster 'prod' (known: {', '.join(sorted([broker_adapter.name, second_broker_adapter.name]))})"
    )
    with pytest.raises(KeyError):
        registry["prod"]
    with pytest.raises(ConfigError, match="configured twice"):
        ClusterRegistry([broker_adapter, broker_adapter])


def test_each_registered_cluster_gets_the_grants_for_it(
    broker_adapter: KubeClusterAdapter,
    second_broker_adapter: KubeClusterAdapter,
    second_control_plane: ControlPlane,
    admin_client_for: Callable[[ControlPlane], Client],
) -> None:
    registry = ClusterRegistry([broker_adapter, second_broker_adapter])
    grant = make_grant(second_control_plane.name, ("default",))
    registry.adapter(grant.cluster).ensure_grant_objects(grant)
    try:
        assert objects_of(admin_client_for(second_control_plane), grant.id) == expected_objects(grant)
        assert not [o for o in broker_adapter.list_owned() if o.grant_id == grant.id]
    finally:
        registry.adapter(grant.cluster).delete_grant_objects(grant.id)
    assert objects_of(admin_client_for(second_control_plane), grant.id) == set()


# -- what a stolen broker credential still cannot do (the admission policy of deploy/rbac.yaml) -----------
def _kubejit_shaped(
    kind: type[RoleBinding] | type[ClusterRoleBinding],
    *,
    namespace: str | None,
    role: tuple[str, str] = ("ClusterRole", "view"),
) -> RoleBinding | ClusterRoleBinding:
    """A binding exactly as kubejit makes one (name, labels, its own grant account), for a made-up grant."""
    grant_id = "g" + secrets.token_hex(6)
    name = f"kubejit-{grant_id}"
    labels = {"app.kubernetes.io/managed-by": "kubejit", GRANT_LABEL: grant_id}
    return kind(
        metadata=ObjectMeta(name=name, namespace=namespace, labels=labels),
        roleRef=KubeRoleRef(apiGroup="rbac.authorization.k8s.io", kind=role[0], name=role[1]),
        subjects=[Subject(kind="ServiceAccount", name=name, namespace=GRANT_NAMESPACE)],
    )


def _refusal(client: Client, obj: Any, **kwargs: Any) -> str:
    with pytest.raises(ApiError) as refused:
        client.create(obj, **kwargs)
    assert refused.value.status.code == 403
    return refused.value.status.message or ""


@pytest.fixture
def stolen(broker_kubeconfig: Path) -> Iterator[Client]:
    """A client holding nothing but the broker's token, used the way a thief would."""
    with Client(KubeConfig.from_file(broker_kubeconfig), trust_env=False) as client:
        yield client


@pytest.fixture
def someone_elses_account(admin_client: Client) -> Iterator[str]:
    """An account in the grant namespace that kubejit did not make (say, one an admin once bound)."""
    name = f"ci-deployer-{secrets.token_hex(3)}"
    admin_client.create(ServiceAccount(metadata=ObjectMeta(name=name, namespace=GRANT_NAMESPACE)))
    yield name
    admin_client.delete(ServiceAccount, name, namespace=GRANT_NAMESPACE)


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease"])
def test_a_forged_kubejit_binding_in_a_protected_namespace_is_refused(
    stolen: Client, admin_client: Client, namespace: str
) -> None:
    forged = _kubejit_shaped(RoleBinding, namespace=namespace, role=("ClusterRole", "admin"))
    said = _refusal(stolen, forged)
    assert f"may not grant access in the protected namespace {namespace}" in said
    assert objects_of(admin_client, _meta(forged).labels[GRANT_LABEL]) == set()  # type: ignore[index]


def test_a_grant_on_kube_system_is_cluster_forbidden_with_the_admission_policys_hint(
    broker_adapter: KubeClusterAdapter, admin_client: Client, control_plane: ControlPlane
) -> None:
    grant = make_grant(control_plane.name, ("kube-system",))
    with pytest.raises(ClusterForbidden, match="protected namespace kube-system") as refused:
        broker_adapter.ensure_grant_objects(grant)
    assert refused.value.hint is not None and "admission policy" in refused.value.hint
    assert objects_of(admin_client, grant.id) == set()


@pytest.mark.parametrize("kind", [RoleBinding, ClusterRoleBinding], ids=["RoleBinding", "ClusterRoleBinding"])
def test_a_forged_kubejit_binding_to_cluster_admin_is_refused(
    stolen: Client, namespaces: tuple[str, str, str], kind: type[RoleBinding] | type[ClusterRoleBinding]
) -> None:
    namespace = namespaces[0] if kind is RoleBinding else None
    _refusal(stolen, _kubejit_shaped(kind, namespace=namespace, role=("ClusterRole", "cluster-admin")))


def test_the_broker_cannot_hand_on_its_own_rights_to_a_grant_account(
    stolen: Client, namespaces: tuple[str, str, str]
) -> None:
    """RBAC lets anyone bind a role whose rights they hold, without `bind`: the broker holds its own
    ClusterRole, and a grant account holding it would be a broker outside the admission policy."""
    forged = _kubejit_shaped(RoleBinding, namespace=namespaces[0], role=("ClusterRole", "kubejit-broker"))
    said = _refusal(stolen, forged)
    assert "may only bind roles it is given `bind` on" in said


def test_the_broker_may_mint_tokens_only_for_kubejit_accounts_and_only_short_ones(
    stolen: Client, broker_adapter: KubeClusterAdapter, grant: Grant, someone_elses_account: str
) -> None:
    broker_adapter.ensure_grant_objects(grant)
    day = ServiceAccount.Token(
        metadata=ObjectMeta(name=grant.service_account),
        spec=TokenRequestSpec(audiences=[], expirationSeconds=24 * 3600),
    )
    said = _refusal(stolen, day, name=grant.service_account, namespace=GRANT_NAMESPACE)
    assert "tokens of at most 3600 seconds for kubejit's own grant accounts" in said
    theirs = ServiceAccount.Token(
        metadata=ObjectMeta(name=someone_elses_account),
        spec=TokenRequestSpec(audiences=[], expirationSeconds=600),
    )
    _refusal(stolen, theirs, name=someone_elses_account, namespace=GRANT_NAMESPACE)
    assert broker_adapter.mint_token(grant, expiration_seconds=3600).token  # what kubejit does still works


def test_the_broker_may_create_and_delete_only_kubejit_accounts(
    stolen: Client, admin_client: Client, someone_elses_account: str
) -> None:
    unlabelled = ServiceAccount(metadata=ObjectMeta(name=f"kubejit-g{secrets.token_hex(6)}"))
    said = _refusal(stolen, unlabelled, namespace=GRANT_NAMESPACE)
    assert "must be named kubejit-<grant> and carry kubejit's labels" in said
    with pytest.raises(ApiError) as refused:
        stolen.delete(ServiceAccount, someone_elses_account, namespace=GRANT_NAMESPACE)
    assert refused.value.status.code == 403
    assert "may only delete bindings and accounts that kubejit created" in (
        refused.value.status.message or ""
    )
    assert admin_client.get(ServiceAccount, someone_elses_account, namespace=GRANT_NAMESPACE)


def test_every_broker_identity_is_confined_not_only_the_one_named_kubejit_broker(
    admin_client: Client, control_plane: ControlPlane, namespaces: tuple[str, str, str]
) -> None:
    """A second account in the broker namespace (a cluster-scope broker, say) given the broker's role:
    the admission policy matches it by its group, not by the name the caller happens to have."""
    name = f"kubejit-other-{secrets.token_hex(3)}"
    admin_client.create(ServiceAccount(metadata=ObjectMeta(name=name, namespace="kubejit")))
    binding = ClusterRoleBinding(
        metadata=ObjectMeta(name=name),
        roleRef=KubeRoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="kubejit-broker"),
        subjects=[Subject(kind="ServiceAccount", name=name, namespace="kubejit")],
    )
    admin_client.create(binding)
    try:
        token = admin_client.create(
            ServiceAccount.Token(metadata=ObjectMeta(name=name), spec=TokenRequestSpec(audiences=[])),
            name,
            namespace="kubejit",
        )
        assert token.status is not None and token.status.token
        to_mallory = RoleBinding(
            metadata=ObjectMeta(name="mallory-admin", namespace=namespaces[0]),
            roleRef=KubeRoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="admin"),
            subjects=[Subject(kind="User", name="mallory", apiGroup="rbac.authorization.k8s.io")],
        )
        with token_client(control_plane, token.status.token) as other:
            said = _refusal(other, to_mallory)
        assert "ValidatingAdmissionPolicy" in said
    finally:
        admin_client.delete(ClusterRoleBinding, name)
        admin_client.delete(ServiceAccount, name, namespace="kubejit")


# -- what a grant's own token cannot do, whatever its role (kubejit-grant-limits in deploy/rbac.yaml) --
@pytest.fixture
def admin_grant(
    broker_adapter: KubeClusterAdapter,
    control_plane: ControlPlane,
    namespaces: tuple[str, str, str],
    token_client_for: TokenClientFor,
) -> Iterator[Client]:
    """A client holding a live `admin` grant's token on the first namespace, as kubectl would."""
    made = make_grant(
        control_plane.name, namespaces[:1], role=RoleRef(name="admin", kind="ClusterRole", ref_name="admin")
    )
    broker_adapter.ensure_grant_objects(made)
    minted = broker_adapter.mint_token(made, expiration_seconds=900)
    with token_client_for(control_plane, minted.token) as client:
        yield client
    broker_adapter.delete_grant_objects(made.id)


def _binding_to(subject: Subject, namespace: str) -> RoleBinding:
    return RoleBinding(
        metadata=ObjectMeta(name=f"way-back-{secrets.token_hex(3)}", namespace=namespace),
        roleRef=KubeRoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="admin"),
        subjects=[subject],
    )


def test_an_admin_grant_cannot_bind_a_role_that_would_outlive_it(
    admin_grant: Client, admin_client: Client, namespaces: tuple[str, str, str]
) -> None:
    """RBAC allows it (the grant holds admin there, so it may bind admin there); the policy does not."""
    namespace = namespaces[0]
    person = Subject(kind="User", name="alice@example.com", apiGroup="rbac.authorization.k8s.io")
    said = _refusal(admin_grant, _binding_to(person, namespace))
    assert "kubejit-grant-limits" in said and "may not change RBAC" in said
    role = Role(
        metadata=ObjectMeta(name="way-back", namespace=namespace),
        rules=[PolicyRule(apiGroups=[""], resources=["pods"], verbs=["get"])],
    )
    assert "may not change RBAC" in _refusal(admin_grant, role)
    assert list(admin_client.list(RoleBinding, namespace=namespace)) == list(
        admin_client.list(
            RoleBinding, namespace=namespace, labels={"app.kubernetes.io/managed-by": "kubejit"}
        )
    )  # nothing but kubejit's own binding there


def test_an_admin_grant_cannot_mint_tokens_or_make_a_token_secret_but_keeps_its_other_rights(
    admin_grant: Client, admin_client: Client, namespaces: tuple[str, str, str]
) -> None:
    namespace = namespaces[0]
    admin_grant.create(ServiceAccount(metadata=ObjectMeta(name="backdoor")), namespace=namespace)  # allowed
    token = ServiceAccount.Token(
        metadata=ObjectMeta(name="backdoor"), spec=TokenRequestSpec(audiences=[], expirationSeconds=600)
    )
    said = _refusal(admin_grant, token, name="backdoor", namespace=namespace)
    assert "may not mint ServiceAccount tokens" in said
    forever = Secret(
        metadata=ObjectMeta(
            name="backdoor-token", annotations={"kubernetes.io/service-account.name": "backdoor"}
        ),
        type="kubernetes.io/service-account-token",
    )
    assert "may not create ServiceAccount token Secrets" in _refusal(
        admin_grant, forever, namespace=namespace
    )
    with pytest.raises(ApiError):
        admin_client.get(Secret, "backdoor-token", namespace=namespace)
    # What the role is for still works: ordinary Secrets, ConfigMaps, deletes.
    admin_grant.create(Secret(metadata=ObjectMeta(name="app"), stringData={"k": "v"}), namespace=namespace)
    admin_grant.create(ConfigMap(metadata=ObjectMeta(name="app"), data={"k": "v"}), namespace=namespace)
    admin_grant.delete(ServiceAccount, "backdoor", namespace=namespace)


def test_a_grant_cannot_ask_for_a_client_certificate(
    broker_adapter: KubeClusterAdapter,
    admin_client: Client,
    control_plane: ControlPlane,
    namespaces: tuple[str, str, str],
    token_client_for: TokenClientFor,
) -> None:
    """A certificate the cluster signs lives for its own term. Here the grant's account is given the
    right to ask for one (by cluster-admin, as a too-wide cluster role would): the policy still refuses."""
    made = make_grant(control_plane.name, namespaces[:1])
    broker_adapter.ensure_grant_objects(made)
    name = f"csr-maker-{made.id}"
    admin_client.create(
        ClusterRole(
            metadata=ObjectMeta(name=name),
            rules=[
                PolicyRule(
                    apiGroups=["certificates.k8s.io"],
                    resources=["certificatesigningrequests"],
                    verbs=["create"],
                )
            ],
        )
    )
    admin_client.create(
        ClusterRoleBinding(
            metadata=ObjectMeta(name=name),
            roleRef=KubeRoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name=name),
            subjects=[Subject(kind="ServiceAccount", name=made.service_account, namespace=GRANT_NAMESPACE)],
        )
    )
    try:
        minted = broker_adapter.mint_token(made, expiration_seconds=900)
        request = CertificateSigningRequest(
            metadata=ObjectMeta(name=name),
            spec=CertificateSigningRequestSpec(
                request=base64.b64encode(_csr_pem("alice@example.com")).decode(),
                signerName="kubernetes.io/kube-apiserver-client",
                usages=["client auth"],
            ),
        )
        with token_client_for(control_plane, minted.token) as grant_client:
            assert "may not request client certificates" in _refusal(grant_client, request)
    finally:
        admin_client.delete(ClusterRoleBinding, name)
        admin_client.delete(ClusterRole, name)
        broker_adapter.delete_grant_objects(made.id)


def _csr_pem(common_name: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)
