from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from kubejit.grants.model import Grant, GrantState
from kubejit.grants.ports import OwnedObject
from kubejit.grants.reconciler import ActionKind, diff
from kubejit.ids import ClusterName, GrantId, NamespaceName, PrincipalName
from kubejit.policy.model import RoleRef

pytestmark = pytest.mark.unit
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def grant(gid: str, state: GrantState = GrantState.ACTIVE, namespaces: tuple[str, ...] = ("a", "b")) -> Grant:
    return Grant(
        id=GrantId(gid),
        requester=PrincipalName("alice"),
        cluster=ClusterName("dev"),
        namespaces=tuple(NamespaceName(n) for n in namespaces),
        role=RoleRef("view", "ClusterRole", "view"),
        duration=timedelta(hours=1),
        reason="",
        ticket=None,
        state=state,
        rule="r",
        created_at=NOW,
        pending_until=NOW,
    )


def objects(gid: str, namespaces: tuple[str, ...] = ("a", "b")) -> list[OwnedObject]:
    sa = OwnedObject("ServiceAccount", "kubejit-grants", f"kubejit-{gid}", GrantId(gid))
    return [sa, *(OwnedObject("RoleBinding", ns, f"kubejit-{gid}", GrantId(gid)) for ns in namespaces)]


def test_complete_live_grants_need_nothing() -> None:
    assert diff([grant("g1")], objects("g1")) == []


def test_objects_without_a_live_grant_are_deleted() -> None:
    actions = diff([grant("g1")], objects("g1") + objects("g2"))
    assert [(a.kind, a.grant_id) for a in actions] == [(ActionKind.DELETE, "g2")]


def test_missing_binding_or_account_is_restored() -> None:
    partial = objects("g1")[:-1]
    assert [a.kind for a in diff([grant("g1")], partial)] == [ActionKind.RESTORE]
    assert [a.kind for a in diff([grant("g1")], objects("g1")[1:])] == [ActionKind.RESTORE]
    assert [a.kind for a in diff([grant("g1")], [])] == [ActionKind.RESTORE]


def test_interrupted_activation_is_finished() -> None:
    actions = diff([grant("g1", GrantState.APPROVED)], objects("g1")[:1])
    assert [(a.kind, a.grant_id) for a in actions] == [(ActionKind.ACTIVATE, "g1")]


def test_cluster_scope_grant_needs_a_cluster_role_binding() -> None:
    g = replace(grant("g1"), role=RoleRef("cv", "ClusterRole", "view", cluster_scope=True))
    sa = objects("g1")[0]
    crb = OwnedObject("ClusterRoleBinding", None, "kubejit-g1", GrantId("g1"))
    assert diff([g], [sa, crb]) == []
    assert [a.kind for a in diff([g], [sa])] == [ActionKind.RESTORE]


def test_in_jwt_mode_a_grant_is_complete_with_its_bindings_alone() -> None:
    bindings = objects("g1")[1:]  # no ServiceAccount in jwt mode
    assert diff([grant("g1")], bindings, service_accounts=False) == []
    assert [a.kind for a in diff([grant("g1")], bindings[:1], service_accounts=False)] == [ActionKind.RESTORE]
    assert [(a.kind, a.grant_id) for a in diff([], bindings, service_accounts=False)] == [
        (ActionKind.DELETE, "g1")
    ]
