from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kubejit.errors import ApprovalRefused, InvalidTransition, PermissionDenied, RequestDenied
from kubejit.grants import lifecycle
from kubejit.grants.model import GrantState
from kubejit.identity.principal import Principal
from kubejit.ids import GrantId
from kubejit.policy.model import AccessRequest, Decision, Outcome, RoleRef

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
ALICE = Principal("alice", frozenset({"developers"}))
BOB = Principal("bob", frozenset({"sre"}))
CAROL = Principal("carol", frozenset({"sre"}))
MALLORY = Principal("mallory", frozenset({"developers"}))
VIEW = RoleRef("view", "ClusterRole", "view")


def decision(approvals: int = 0, *, extendable: bool = False) -> Decision:
    return Decision(
        outcome=Outcome.AUTO if approvals == 0 else Outcome.APPROVAL,
        rule="r1",
        message="ok",
        role=VIEW,
        duration=timedelta(hours=1),
        max_duration=timedelta(hours=2),
        approvals_required=approvals,
        approver_groups=frozenset({"sre"}) if approvals else frozenset(),
        extendable=extendable,
        pending_timeout=timedelta(minutes=30),
    )


def grant(approvals: int = 0, **kw: bool):  # type: ignore[no-untyped-def]
    request = AccessRequest(cluster="dev", namespaces=("team-a",), role="view", reason=" debugging ")
    return lifecycle.new_grant(
        GrantId("g1"), principal=ALICE, request=request, decision=decision(approvals, **kw), now=NOW
    )


def test_auto_rule_makes_an_approved_grant_whose_duration_counts_from_activation() -> None:
    g = grant()
    assert g.state is GrantState.APPROVED and g.reason == "debugging" and g.expires_at is None
    later = NOW + timedelta(minutes=5)
    active = lifecycle.activate(g, now=later)
    assert active.state is GrantState.ACTIVE
    assert active.expires_at == later + timedelta(hours=1)


def test_denied_decision_cannot_become_a_grant() -> None:
    deny = Decision(outcome=Outcome.DENY, rule="default-deny", message="no rule allows it")
    request = AccessRequest(cluster="dev", namespaces=("x",), role="view")
    with pytest.raises(RequestDenied) as err:
        lifecycle.new_grant(GrantId("g"), principal=ALICE, request=request, decision=deny, now=NOW)
    assert err.value.rule == "default-deny"


def test_self_approval_is_refused_even_for_an_approver_group_member() -> None:
    g = grant(1)
    requester_in_group = Principal("alice", frozenset({"sre"}))
    with pytest.raises(ApprovalRefused, match="your own"):
        lifecycle.approve(g, approver=requester_in_group, comment="", now=NOW)


def test_approver_outside_the_groups_is_refused() -> None:
    with pytest.raises(ApprovalRefused, match="not an approver"):
        lifecycle.approve(grant(1), approver=MALLORY, comment="", now=NOW)


def test_two_approver_rule_needs_two_different_people() -> None:
    g = lifecycle.approve(grant(2), approver=BOB, comment="ok", now=NOW)
    assert g.state is GrantState.PENDING and len(g.approvals) == 1
    with pytest.raises(ApprovalRefused, match="already approved"):
        lifecycle.approve(g, approver=BOB, comment="again", now=NOW)
    g = lifecycle.approve(g, approver=CAROL, comment="", now=NOW)
    assert g.state is GrantState.APPROVED
    assert [a.approver for a in g.approvals] == ["bob", "carol"]


def test_approval_after_the_pending_timeout_is_refused() -> None:
    with pytest.raises(InvalidTransition, match="timed out"):
        lifecycle.approve(grant(1), approver=BOB, comment="", now=NOW + timedelta(minutes=31))


def test_deny_records_the_reason_and_who() -> None:
    g = lifecycle.deny(grant(1), approver=BOB, reason=" not now ", now=NOW)
    assert (g.state, g.ended_by, g.end_reason) == (GrantState.DENIED, "bob", "not now")
    with pytest.raises(InvalidTransition):
        lifecycle.approve(g, approver=CAROL, comment="", now=NOW)


def test_revoke_by_requester_admin_or_approver_only() -> None:
    active = lifecycle.activate(grant(), now=NOW)
    assert (
        lifecycle.revoke(active, actor=ALICE, is_admin=False, reason="", now=NOW).state is GrantState.REVOKED
    )
    assert lifecycle.revoke(active, actor=MALLORY, is_admin=True, reason="", now=NOW).ended_by == "mallory"
    with pytest.raises(PermissionDenied):
        lifecycle.revoke(active, actor=MALLORY, is_admin=False, reason="", now=NOW)
    ended = lifecycle.revoke(active, actor=ALICE, is_admin=False, reason="", now=NOW)
    with pytest.raises(InvalidTransition):
        lifecycle.revoke(ended, actor=ALICE, is_admin=False, reason="", now=NOW)


def test_expire_ends_active_and_timed_out_pending_grants_only() -> None:
    active = lifecycle.activate(grant(), now=NOW)
    assert lifecycle.expire(active, now=NOW).state is GrantState.EXPIRED
    assert lifecycle.expire(grant(1), now=NOW).end_reason.startswith("no decision")
    with pytest.raises(InvalidTransition):
        lifecycle.expire(grant(), now=NOW)  # approved, activation in flight: not the sweeper's


def test_extend_respects_the_rule() -> None:
    active = lifecycle.activate(grant(extendable=True), now=NOW)
    longer = lifecycle.extend(active, actor=ALICE, by=timedelta(minutes=30), now=NOW)
    assert longer.expires_at == NOW + timedelta(minutes=90)
    with pytest.raises(RequestDenied, match="at most 2h"):
        lifecycle.extend(longer, actor=ALICE, by=timedelta(hours=1), now=NOW)
    with pytest.raises(PermissionDenied):
        lifecycle.extend(active, actor=BOB, by=timedelta(minutes=1), now=NOW)
    fixed = lifecycle.activate(grant(), now=NOW)
    with pytest.raises(RequestDenied, match="does not allow extending"):
        lifecycle.extend(fixed, actor=ALICE, by=timedelta(minutes=1), now=NOW)


def test_fail_only_from_approved() -> None:
    assert lifecycle.fail(grant(), reason="boom", now=NOW).state is GrantState.FAILED
    with pytest.raises(InvalidTransition):
        lifecycle.fail(grant(1), reason="boom", now=NOW)


OKTA_BOB = Principal("okta:bob", frozenset({"sre"}), issuer="okta", person="bob@corp.example")
GOOGLE_BOB = Principal("google:bob", frozenset({"sre"}), issuer="google", person="bob@corp.example")


def test_one_person_with_two_logins_gives_one_approval() -> None:
    g = lifecycle.approve(grant(2), approver=OKTA_BOB, comment="", now=NOW)
    assert g.approvals[0].person == "bob@corp.example"
    with pytest.raises(ApprovalRefused, match=r"already approved .*\(as okta:bob, the same person\)"):
        lifecycle.approve(g, approver=GOOGLE_BOB, comment="", now=NOW)
    # Logins without a verified email are told apart by name only.
    g = lifecycle.approve(g, approver=Principal("google:bob", frozenset({"sre"})), comment="", now=NOW)
    assert g.state is GrantState.APPROVED


def test_nobody_approves_their_own_request_under_another_login() -> None:
    request = AccessRequest(cluster="dev", namespaces=("team-a",), role="view")
    requester = Principal("okta:alice", frozenset({"developers"}), person="alice@corp.example")
    g = lifecycle.new_grant(GrantId("g"), principal=requester, request=request, decision=decision(1), now=NOW)
    assert g.requester_person == "alice@corp.example"
    other_login = Principal("google:alice", frozenset({"sre"}), person="alice@corp.example")
    with pytest.raises(ApprovalRefused, match=r"your own request g \(made as okta:alice, the same person\)"):
        lifecycle.approve(g, approver=other_login, comment="", now=NOW)
    with pytest.raises(ApprovalRefused, match="your own"):
        lifecycle.deny(g, approver=other_login, reason="", now=NOW)
    someone_else = Principal("google:alice", frozenset({"sre"}), person="alice@elsewhere.example")
    assert lifecycle.approve(g, approver=someone_else, comment="", now=NOW).state is GrantState.APPROVED


def test_an_approval_is_good_for_the_pending_timeout_and_then_only_expires() -> None:
    g = grant()  # auto-approved at NOW, pendingTimeout 30 min
    assert lifecycle.activation_deadline(g) == NOW + timedelta(minutes=30)
    assert lifecycle.activate(g, now=NOW + timedelta(minutes=29)).state is GrantState.ACTIVE
    late = NOW + timedelta(minutes=30)
    with pytest.raises(InvalidTransition, match="not activated within its pendingTimeout"):
        lifecycle.activate(g, now=late)
    ended = lifecycle.expire(g, now=late)
    assert ended.state is GrantState.EXPIRED and ended.end_reason == lifecycle.STALE_APPROVAL_REASON
    with pytest.raises(InvalidTransition):  # a fresh approval is not expired
        lifecycle.expire(g, now=NOW + timedelta(minutes=1))
