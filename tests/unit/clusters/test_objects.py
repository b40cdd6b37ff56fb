"""The Kubernetes objects of a grant, checked by value (what the API server would receive)."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from lightkube import ApiError

from kubejit.clusters.adapter import token_id
from kubejit.clusters.errors import cluster_error, is_already_exists, is_not_found
from kubejit.clusters.objects import (
    MAX_REASON_CHARS,
    is_grant_id,
    managed_selector,
    object_name,
    ownership_labels,
    role_bindings_for,
    service_account_for,
    token_request_for,
)
from kubejit.errors import ClusterConflict, ClusterError, ClusterForbidden, ClusterUnavailable, InvalidInput
from kubejit.grants.model import Grant, GrantState
from kubejit.ids import ClusterName, GrantId, NamespaceName, PrincipalName
from kubejit.policy.model import RoleRef

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
VIEW = RoleRef(name="view", kind="ClusterRole", ref_name="view")
LABELS = {"app.kubernetes.io/managed-by": "kubejit", "kubejit.io/grant": "g1a2b3c"}


def make_grant(**changes: Any) -> Grant:
    grant = Grant(
        id=GrantId("g1a2b3c"),
        requester=PrincipalName("alice@example.com"),
        cluster=ClusterName("prod"),
        namespaces=(NamespaceName("team-a"), NamespaceName("team-b")),
        role=VIEW,
        duration=timedelta(hours=1),
        reason="debug INC-42",
        ticket="INC-42",
        state=GrantState.APPROVED,
        rule="oncall-view",
        created_at=T0,
        pending_until=T0 + timedelta(hours=1),
    )
    return dataclasses.replace(grant, **changes)


# -- labels and names ------------------------------------------------------------------------------
def test_ownership_labels_mark_kubejit_and_the_grant() -> None:
    assert ownership_labels(GrantId("g1a2b3c")) == LABELS
    assert managed_selector() == {"app.kubernetes.io/managed-by": "kubejit"}


def test_object_name_is_the_grants_service_account() -> None:
    grant = make_grant()
    assert object_name(grant.id) == grant.service_account == "kubejit-g1a2b3c"


@pytest.mark.parametrize("bad", ["", "G1", "g_1", "g1-", "-g1", "a" * 56, "g1/../x", "g1\n"])
def test_a_grant_id_that_cannot_name_objects_is_refused(bad: str) -> None:
    assert not is_grant_id(bad)
    with pytest.raises(InvalidInput, match="cannot name Kubernetes objects"):
        ownership_labels(GrantId(bad))


# -- ServiceAccount ------------------------------------------------------------------------------
def test_service_account_lives_in_the_grant_namespace_with_labels_and_annotations() -> None:
    sa = service_account_for(make_grant(), namespace="kubejit-grants")
    assert sa.to_dict() == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "automountServiceAccountToken": False,
        "metadata": {
            "name": "kubejit-g1a2b3c",
            "namespace": "kubejit-grants",
            "labels": LABELS,
            "annotations": {
                "kubejit.io/requester": "alice@example.com",
                "kubejit.io/reason": "debug INC-42",
                "kubejit.io/rule": "oncall-view",
                "kubejit.io/role": "view",
                "kubejit.io/ticket": "INC-42",
            },
        },
    }


def test_service_account_records_expiry_once_the_grant_has_one() -> None:
    sa = service_account_for(make_grant(expires_at=T0 + timedelta(hours=1)), namespace="kubejit-grants")
    assert sa.metadata is not None and sa.metadata.annotations is not None
    assert sa.metadata.annotations["kubejit.io/expires-at"] == "2026-01-01T13:00:00+00:00"


def test_service_account_omits_a_missing_ticket() -> None:
    sa = service_account_for(make_grant(ticket=None), namespace="kubejit-grants")
    assert sa.metadata is not None and sa.metadata.annotations is not None
    assert "kubejit.io/ticket" not in sa.metadata.annotations


def test_a_long_reason_is_truncated_and_marked() -> None:
    sa = service_account_for(make_grant(reason="x" * 10_000), namespace="kubejit-grants")
    assert sa.metadata is not None and sa.metadata.annotations is not None
    reason = sa.metadata.annotations["kubejit.io/reason"]
    assert len(reason) == MAX_REASON_CHARS
    assert reason.endswith("…")


# -- bindings --------------------------------------------------------------------------------------
def _rolebinding(namespace: str, *, kind: str = "ClusterRole", ref: str = "view") -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": "kubejit-g1a2b3c",
            "namespace": namespace,
            "labels": LABELS,
            "annotations": {
                "kubejit.io/requester": "alice@example.com",
                "kubejit.io/reason": "debug INC-42",
                "kubejit.io/rule": "oncall-view",
                "kubejit.io/role": "view",
                "kubejit.io/ticket": "INC-42",
            },
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": ref},
        "subjects": [{"kind": "ServiceAccount", "name": "kubejit-g1a2b3c", "namespace": "kubejit-grants"}],
    }


def test_one_role_binding_per_granted_namespace() -> None:
    bindings = role_bindings_for(make_grant(), sa_namespace="kubejit-grants")
    assert [b.to_dict() for b in bindings] == [_rolebinding("team-a"), _rolebinding("team-b")]


def test_a_namespace_named_twice_is_bound_once() -> None:
    grant = make_grant(namespaces=(NamespaceName("team-a"), NamespaceName("team-a")))
    assert [b.to_dict() for b in role_bindings_for(grant, sa_namespace="kubejit-grants")] == [
        _rolebinding("team-a")
    ]


def test_a_namespaced_role_is_referred_to_as_a_role() -> None:
    role = RoleRef(name="view", kind="Role", ref_name="app-debugger")
    grant = make_grant(role=role, namespaces=(NamespaceName("team-a"),))
    bindings = role_bindings_for(grant, sa_namespace="kubejit-grants")
    assert [b.to_dict() for b in bindings] == [_rolebinding("team-a", kind="Role", ref="app-debugger")]


def test_a_cluster_scoped_role_gets_one_cluster_role_binding_and_no_role_binding() -> None:
    role = RoleRef(name="cluster-reader", kind="ClusterRole", ref_name="view", cluster_scope=True)
    grant = make_grant(role=role, namespaces=())
    [binding] = role_bindings_for(grant, sa_namespace="kubejit-grants")
    expected = _rolebinding("unused")
    expected["kind"] = "ClusterRoleBinding"
    del expected["metadata"]["namespace"]
    expected["metadata"]["annotations"]["kubejit.io/role"] = "cluster-reader"
    assert binding.to_dict() == expected


def test_a_cluster_scoped_role_must_be_a_cluster_role() -> None:
    role = RoleRef(name="odd", kind="Role", ref_name="app-debugger", cluster_scope=True)
    with pytest.raises(InvalidInput, match="refers to a Role"):
        role_bindings_for(make_grant(role=role), sa_namespace="kubejit-grants")


def test_a_namespaced_grant_without_namespaces_is_refused() -> None:
    with pytest.raises(InvalidInput, match="names no namespace"):
        role_bindings_for(make_grant(namespaces=()), sa_namespace="kubejit-grants")


# -- TokenRequest ----------------------------------------------------------------------------------
def test_token_request_names_the_account_audience_and_lifetime() -> None:
    request = token_request_for(make_grant(), audience="https://prod.example", expiration_seconds=900)
    assert request.to_dict() == {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "metadata": {"name": "kubejit-g1a2b3c"},
        "spec": {"audiences": ["https://prod.example"], "expirationSeconds": 900},
    }


def test_token_request_without_audience_leaves_the_api_servers_default() -> None:
    request = token_request_for(make_grant(), audience=None, expiration_seconds=600)
    assert request.spec is not None
    assert not request.spec.audiences


@pytest.mark.parametrize("seconds", [0, -1, 599])
def test_token_request_shorter_than_the_api_minimum_is_refused(seconds: int) -> None:
    with pytest.raises(InvalidInput, match="at least 600 seconds"):
        token_request_for(make_grant(), audience=None, expiration_seconds=seconds)


# -- pure helpers of the adapter: token ids and error translation -----------------------------------
def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def test_token_id_is_the_jti_claim() -> None:
    assert token_id(_jwt({"jti": "5e2c-11", "sub": "system:serviceaccount:x:y"})) == "5e2c-11"


@pytest.mark.parametrize("token", ["not-a-jwt", "a.%%%.c", "a." + "e30" + ".c", _jwt({"jti": 7})])
def test_token_id_falls_back_to_a_hash_prefix_never_the_token(token: str) -> None:
    got = token_id(token)
    assert got.startswith("sha256:") and len(got) == len("sha256:") + 16
    assert token not in got


def _api_error(code: int, reason: str, message: str) -> ApiError:
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason}
    request = httpx2.Request("POST", "https://127.0.0.1:6443/api/v1/namespaces/x/serviceaccounts")
    response = httpx2.Response(code, json={**status, "message": message}, request=request)
    return ApiError(request=request, response=response)


@pytest.mark.parametrize(
    ("code", "reason", "kind"),
    [
        (403, "Forbidden", ClusterForbidden),
        (409, "AlreadyExists", ClusterConflict),
        (429, "TooManyRequests", ClusterUnavailable),
        (500, "InternalError", ClusterUnavailable),
        (503, "ServiceUnavailable", ClusterUnavailable),
        (401, "Unauthorized", ClusterError),
        (422, "Invalid", ClusterError),
    ],
)
def test_api_statuses_map_to_the_error_tree(code: int, reason: str, kind: type[ClusterError]) -> None:
    error = cluster_error(_api_error(code, reason, "said the server"), cluster="prod", action="create X")
    assert type(error) is kind
    assert "prod" in error.message and "said the server" in error.message


def test_forbidden_names_what_was_refused_and_points_at_the_rbac_manifest() -> None:
    said = 'serviceaccounts is forbidden: User "broker" cannot create resource "serviceaccounts"'
    error = cluster_error(
        _api_error(403, "Forbidden", said), cluster="prod", action="create ServiceAccount x"
    )
    assert (
        "create ServiceAccount x" in error.message
        and 'cannot create resource "serviceaccounts"' in error.message
    )
    assert error.hint is not None and "deploy/rbac.yaml" in error.hint


def test_a_refusal_by_admission_policy_is_not_blamed_on_rbac() -> None:
    said = 'ValidatingAdmissionPolicy "kubejit-broker-bindings" denied request: no'
    error = cluster_error(_api_error(403, "Forbidden", said), cluster="prod", action="create X")
    assert type(error) is ClusterForbidden
    assert error.hint is not None and "admission policy" in error.hint and "apply" not in error.hint


def test_a_connection_failure_is_transient() -> None:
    failure = httpx2.ConnectError("connection refused")
    assert type(cluster_error(failure, cluster="prod", action="list X")) is ClusterUnavailable


def test_a_very_long_server_message_is_truncated() -> None:
    error = cluster_error(_api_error(403, "Forbidden", "y" * 5000), cluster="prod", action="create X")
    assert len(error.message) < 600


def test_not_found_and_already_exists_are_recognised() -> None:
    assert is_not_found(_api_error(404, "NotFound", "gone"))
    assert is_already_exists(_api_error(409, "AlreadyExists", "there"))
    assert not is_already_exists(_api_error(409, "Conflict", "stale resourceVersion"))
    assert not is_not_found(httpx2.ConnectError("refused"))
