from __future__ import annotations

import itertools
import logging
from dataclasses import replace
from datetime import timedelta

import pytest

from kubejit.clock import FixedClock
from kubejit.errors import (
    ApprovalRefused,
    ClusterForbidden,
    ClusterUnavailable,
    NotFound,
    PermissionDenied,
    RequestDenied,
    TooManyOpenGrants,
)
from kubejit.grants.model import Grant, GrantState
from kubejit.grants.service import GrantService
from kubejit.identity.principal import Principal
from kubejit.ids import GrantId
from kubejit.policy.model import AccessRequest, Policy, RoleRef, Rule
from tests.fakes import FakeCluster, MemoryLockStore, MemoryStore

pytestmark = pytest.mark.unit

ALICE = Principal("alice", frozenset({"developers"}))
BOB = Principal("bob", frozenset({"sre"}))
CAROL = Principal("carol", frozenset({"sre"}))
ADMIN = Principal("root", frozenset({"platform-admins"}))
#: A developer who also decides sre requests.
BOB_DEV = Principal("bob", frozenset({"developers", "sre"}))

POLICY = Policy(
    roles={"view": RoleRef("view", "ClusterRole", "view"), "edit": RoleRef("edit", "ClusterRole", "edit")},
    rules=(
        Rule(
            name="dev-auto",
            effect="allow",
            groups=frozenset({"developers"}),
            clusters=("dev",),
            namespaces=("team-*",),
            roles=("view",),
            max_duration=timedelta(hours=2),
        ),
        Rule(
            name="dev-edit",
            effect="allow",
            groups=frozenset({"developers"}),
            clusters=("dev",),
            namespaces=("payments",),
            roles=("edit",),
            approvals_required=2,
            approver_groups=frozenset({"sre"}),
            require_reason=True,
            extendable=True,
            pending_timeout=timedelta(minutes=30),
        ),
    ),
    admin_groups=frozenset({"platform-admins"}),
)


@pytest.fixture
def world() -> tuple[GrantService, MemoryStore, FakeCluster, FixedClock]:
    store, cluster, clock = MemoryStore(), FakeCluster(), FixedClock()
    ids = (GrantId(f"g{i}") for i in itertools.count(1))
    service = GrantService(
        store=store,
        audit=store,
        clusters={"dev": cluster},
        policy=POLICY,
        clock=clock,
        id_factory=lambda: next(ids),
        locks=MemoryLockStore(),
    )
    return service, store, cluster, clock


VIEW = AccessRequest(cluster="dev", namespaces=("team-a",), role="view", reason="debug")
EDIT = AccessRequest(cluster="dev", namespaces=("payments",), role="edit", reason="hotfix")


def test_auto_grant_is_active_with_objects_and_audited(world) -> None:  # type: ignore[no-untyped-def]
    service, store, cluster, clock = world
    grant = service.request(ALICE, VIEW)
    assert grant.state is GrantState.ACTIVE and grant.expires_at == clock.now() + timedelta(hours=1)
    assert {o.kind for o in cluster.objects[grant.id]} == {"ServiceAccount", "RoleBinding"}
    assert store.actions() == ["policy.decided", "grant.requested", "grant.activated"]


def test_refused_request_creates_nothing_and_names_the_rule(world) -> None:  # type: ignore[no-untyped-def]
    service, store, cluster, _ = world
    with pytest.raises(RequestDenied) as err:
        service.request(
            ALICE, AccessRequest(cluster="dev", namespaces=("kube-system",), role="view", reason="x")
        )
    assert err.value.rule == "default-deny"
    assert cluster.objects == {} and store.grants == {}
    assert store.actions() == ["policy.decided", "grant.request_denied"]


def test_unknown_cluster_is_not_found(world) -> None:  # type: ignore[no-untyped-def]
    service, store, _, _ = world
    with pytest.raises(NotFound, match="known: dev"):
        service.request(ALICE, AccessRequest(cluster="prod", namespaces=("team-a",), role="view"))
    assert store.grants == {}


def test_two_approvals_activate_and_self_approval_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    service, store, cluster, _ = world
    grant = service.request(ALICE, EDIT)
    assert grant.state is GrantState.PENDING and cluster.objects == {}
    with pytest.raises(ApprovalRefused):
        service.approve(ALICE, grant.id)
    assert service.pending_for(BOB) == [store.get(grant.id)] and service.pending_for(ALICE) == []
    assert service.approve(BOB, grant.id).state is GrantState.PENDING
    active = service.approve(CAROL, grant.id, comment="go")
    assert active.state is GrantState.ACTIVE and grant.id in cluster.objects


def test_a_person_never_sees_their_own_request_made_under_another_login(world) -> None:  # type: ignore[no-untyped-def]
    service, store, _, _ = world
    okta_alice = Principal("okta:alice", frozenset({"developers"}), person="alice@corp.example")
    google_alice = Principal("google:alice", frozenset({"sre"}), person="alice@corp.example")
    other_alice = Principal("google:alice2", frozenset({"sre"}), person="alice@elsewhere.example")
    grant = service.request(okta_alice, EDIT)
    assert service.pending_for(google_alice) == []
    assert service.pending_for(other_alice) == [store.get(grant.id)]
    assert service.pending_for(BOB) == [store.get(grant.id)]  # no person: the name check only


def test_revoke_deletes_objects_and_offboarding_ends_everything(world) -> None:  # type: ignore[no-untyped-def]
    service, store, cluster, _ = world
    first = service.request(ALICE, VIEW)
    second = service.request(ALICE, VIEW)
    pending = service.request(ALICE, EDIT)
    assert service.revoke(ALICE, first.id).state is GrantState.REVOKED
    assert first.id not in cluster.objects
    with pytest.raises(PermissionDenied):
        service.lockouts.revoke_user(BOB, "alice")
    ended = service.lockouts.revoke_user(ADMIN, "alice").grants.ended
    assert {g.id for g in ended} == {second.id, pending.id}
    assert cluster.objects == {}
    assert all(g.state is GrantState.REVOKED for g in store.grants.values())


def test_sweeper_expires_due_grants_and_pending_requests(world) -> None:  # type: ignore[no-untyped-def]
    service, store, cluster, clock = world
    active = service.request(ALICE, VIEW)
    pending = service.request(ALICE, EDIT)
    clock.advance(timedelta(minutes=31))
    assert [g.id for g in service.expire_due()] == [pending.id]
    clock.advance(timedelta(minutes=30))
    assert [g.id for g in service.expire_due()] == [active.id]
    assert cluster.objects == {}
    assert store.get(active.id).state is GrantState.EXPIRED


def test_permanent_cluster_error_fails_the_grant_and_leaves_nothing(world) -> None:  # type: ignore[no-untyped-def]
    service, store, cluster, _ = world
    cluster.fail_with = ClusterForbidden("cannot bind edit")
    with pytest.raises(ClusterForbidden):
        service.request(ALICE, VIEW)
    (grant,) = store.grants.values()
    assert grant.state is GrantState.FAILED and cluster.objects == {}


def test_unavailable_cluster_leaves_approved_for_the_reconciler(world) -> None:  # type: ignore[no-untyped-def]
    service, store, cluster, _ = world
    cluster.fail_with = ClusterUnavailable("connection refused")
    with pytest.raises(ClusterUnavailable):
        service.request(ALICE, VIEW)
    (grant,) = store.grants.values()
    assert grant.state is GrantState.APPROVED
    cluster.fail_with = None
    service.reconcile()
    assert store.get(grant.id).state is GrantState.ACTIVE and grant.id in cluster.objects


def test_reconciler_removes_orphans_and_restores_missing(world) -> None:  # type: ignore[no-untyped-def]
    service, store, cluster, _ = world
    kept = service.request(ALICE, VIEW)
    gone = service.request(ALICE, VIEW)
    orphan = dict(cluster.objects)[gone.id]
    cluster.fail_delete = ClusterUnavailable("down")
    service.revoke(ALICE, gone.id)  # cleanup deferred
    assert "grant.cleanup_deferred" in store.actions()
    cluster.fail_delete = None
    cluster.objects[kept.id] = cluster.objects[kept.id][:1]  # lose the binding
    assert cluster.objects[gone.id] == orphan
    done = service.reconcile()
    assert {(a.kind, a.grant_id) for a in done} == {("delete", gone.id), ("restore", kept.id)}
    assert set(cluster.objects) == {kept.id} and len(cluster.objects[kept.id]) == 2


def test_tokens_are_issued_to_the_requester_only_and_stored_as_hash(world) -> None:  # type: ignore[no-untyped-def]
    service, store, _, clock = world
    grant = service.request(ALICE, VIEW)
    minted = service.issue_token(ALICE, grant.id)
    assert store.tokens[0][2] != minted.token and len(store.tokens[0][2]) == 64
    assert all(minted.token not in repr(e) for e in store.events)
    with pytest.raises(PermissionDenied):
        service.issue_token(BOB, grant.id)
    clock.advance(timedelta(hours=2))
    with pytest.raises(Exception, match="no token can be issued"):
        service.issue_token(ALICE, grant.id)


def test_extend_only_where_the_rule_allows(world) -> None:  # type: ignore[no-untyped-def]
    service, _, _, _ = world
    view = service.request(ALICE, VIEW)
    with pytest.raises(RequestDenied, match="does not allow extending"):
        service.extend(ALICE, view.id, by=timedelta(minutes=15))
    edit = service.request(ALICE, EDIT)
    service.approve(BOB, edit.id)
    service.approve(CAROL, edit.id)
    longer = service.extend(ALICE, edit.id, by=timedelta(minutes=15))
    assert longer.duration == timedelta(minutes=75)


def test_open_grants_per_person_are_capped_before_anything_is_written() -> None:
    store, cluster, clock = MemoryStore(), FakeCluster(), FixedClock()
    ids = (GrantId(f"g{i}") for i in itertools.count(1))
    service = GrantService(
        store=store,
        audit=store,
        clusters={"dev": cluster},
        policy=POLICY,
        clock=clock,
        id_factory=lambda: next(ids),
        max_open_grants=3,
    )
    service.request(ALICE, VIEW)  # active
    service.request(ALICE, EDIT)  # pending
    approved = service.request(ALICE, EDIT)
    events_before = len(store.events)
    with pytest.raises(TooManyOpenGrants, match="at most 3 per person") as err:
        service.request(ALICE, VIEW)
    assert err.value.http_status == 409 and "revoke" in (err.value.hint or "")
    assert len(store.grants) == 3 and len(store.events) == events_before
    assert service.request(BOB_DEV, VIEW).state is GrantState.ACTIVE  # the cap is per person
    service.revoke(ALICE, approved.id)  # an ended grant no longer counts
    assert service.request(ALICE, VIEW).state is GrantState.ACTIVE


def test_pending_for_finds_old_requests_behind_1500_newer_ones_of_other_groups(world) -> None:  # type: ignore[no-untyped-def]
    service, _, _, clock = world
    mine = [service.request(ALICE, EDIT) for _ in range(5)]  # the oldest: sre decides them
    others = replace(
        POLICY,
        rules=tuple(replace(r, approver_groups=frozenset({"security"})) for r in POLICY.rules),
    )
    service.policy = others
    for _ in range(1500):
        clock.advance(timedelta(seconds=1))
        service.request(ALICE, EDIT)
    service.request(BOB_DEV, EDIT)  # bob's own request is never his to decide
    found = service.pending_for(BOB_DEV)
    assert [g.id for g in found] == [g.id for g in reversed(mine)]
    assert (
        service.pending_for(Principal("dave", frozenset({"security"})), limit=10)[0].requester == BOB_DEV.name
    )


# -- cluster tokens live at most an hour, whatever the grant's length ------------------------------
def test_a_token_lives_at_most_an_hour_and_never_past_the_grant(world) -> None:  # type: ignore[no-untyped-def]
    service, _, cluster, clock = world
    grant = service.request(ALICE, replace(VIEW, duration=timedelta(hours=2)))
    service.issue_token(ALICE, grant.id)  # 2 h left: capped
    clock.advance(timedelta(minutes=90))
    service.issue_token(ALICE, grant.id)  # 30 min left: the grant's end
    clock.advance(timedelta(minutes=25))
    service.issue_token(ALICE, grant.id)  # 5 min left: the API server's minimum
    assert cluster.minted_seconds == [3600, 1800, 600]


def test_the_token_cap_is_a_setting_but_never_below_the_api_servers_minimum() -> None:
    store, cluster = MemoryStore(), FakeCluster()
    service = GrantService(
        store=store,
        audit=store,
        clusters={"dev": cluster},
        policy=POLICY,
        clock=FixedClock(),
        max_token_seconds=60,
    )
    grant = service.request(ALICE, VIEW)
    service.issue_token(ALICE, grant.id)
    assert cluster.minted_seconds == [600]


# -- an approval that could not activate in time expires; it never activates late -------------------
def _approved_while_the_cluster_is_down(
    service: GrantService, store: MemoryStore, cluster: FakeCluster
) -> Grant:
    cluster.fail_with = ClusterUnavailable("connection refused")
    with pytest.raises(ClusterUnavailable):
        service.request(ALICE, VIEW)
    (grant,) = store.grants.values()
    assert grant.state is GrantState.APPROVED
    return grant


def test_a_stale_approval_is_expired_by_the_reconciler_not_activated(world) -> None:  # type: ignore[no-untyped-def]
    service, store, cluster, clock = world
    grant = _approved_while_the_cluster_is_down(service, store, cluster)
    clock.advance(timedelta(days=3))
    cluster.fail_with = None  # the cluster is back

    assert service.reconcile() == []

    ended = store.get(grant.id)
    assert ended.state is GrantState.EXPIRED and ended.activated_at is None
    assert "cluster was unavailable until the approval timed out" in ended.end_reason
    assert cluster.objects == {}
    expired = [e for e in store.events if e.action == "grant.expired"]
    assert len(expired) == 1 and expired[0].details["why"] == ended.end_reason
    assert "grant.activated" not in store.actions()
    before = len(store.events)
    service.reconcile()  # idempotent: nothing left to do
    assert len(store.events) == before and store.get(grant.id).state is GrantState.EXPIRED


def test_a_stale_approval_expires_even_while_its_cluster_is_still_down(world) -> None:  # type: ignore[no-untyped-def]
    service, store, cluster, clock = world
    grant = _approved_while_the_cluster_is_down(service, store, cluster)
    cluster.fail_list = ClusterUnavailable("connection refused")
    clock.advance(timedelta(hours=1))  # the rule's pendingTimeout (the default, 1 h)

    service.reconcile()

    assert store.get(grant.id).state is GrantState.EXPIRED


def test_an_approval_within_its_timeout_still_activates(world) -> None:  # type: ignore[no-untyped-def]
    service, store, cluster, clock = world
    grant = _approved_while_the_cluster_is_down(service, store, cluster)
    clock.advance(timedelta(minutes=59))
    cluster.fail_with = None
    service.reconcile()
    assert store.get(grant.id).state is GrantState.ACTIVE


def test_the_approval_timeout_counts_from_the_last_approval(world) -> None:  # type: ignore[no-untyped-def]
    service, store, cluster, clock = world
    edit = service.request(ALICE, EDIT)  # pendingTimeout 30 min
    clock.advance(timedelta(minutes=25))
    service.approve(BOB, edit.id)
    cluster.fail_with = ClusterUnavailable("connection refused")
    with pytest.raises(ClusterUnavailable):
        service.approve(CAROL, edit.id)
    clock.advance(timedelta(minutes=29))  # 54 min after the request, 29 after the approval
    cluster.fail_with = None
    service.reconcile()
    assert store.get(edit.id).state is GrantState.ACTIVE


def test_a_stale_approval_another_replica_already_ended_is_skipped(world) -> None:  # type: ignore[no-untyped-def]
    service, store, cluster, clock = world
    grant = _approved_while_the_cluster_is_down(service, store, cluster)
    clock.advance(timedelta(days=1))
    seen_by_this_replica = store.get(grant.id)
    store.grants[grant.id] = replace(
        seen_by_this_replica, state=GrantState.REVOKED, version=seen_by_this_replica.version + 1
    )
    cluster.fail_with = None

    service._drop_stale_approvals([seen_by_this_replica])

    assert store.get(grant.id).state is GrantState.REVOKED
    assert "grant.expired" not in store.actions()


# -- an outage is one log line, not a traceback per tick ----------------------------------------------
def test_an_outage_logs_once_and_its_end_once(world, caplog) -> None:  # type: ignore[no-untyped-def]
    service, _, cluster, _ = world
    caplog.set_level(logging.INFO, logger="kubejit")
    cluster.fail_list = ClusterUnavailable("cannot reach cluster 'dev': connection refused")
    for _ in range(3):
        assert service.reconcile() == []
    assert service.reachability.snapshot() == {"dev": False}
    cluster.fail_list = None
    for _ in range(3):
        service.reconcile()
    assert service.reachability.snapshot() == {"dev": True}
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "cluster dev is unreachable, reconciling it waits until it answers: "
            "cannot reach cluster 'dev': connection refused",
        ),
        ("INFO", "cluster dev is reachable again"),
    ]
    assert all(r.exc_info is None for r in caplog.records)


def test_a_jwt_mode_cluster_is_reconciled_without_service_accounts(world) -> None:  # type: ignore[no-untyped-def]
    service, _, cluster, _ = world
    cluster.uses_service_accounts = False  # jwt mode: a grant is its bindings
    kept = service.request(ALICE, VIEW)
    assert [o.kind for o in cluster.objects[kept.id]] == ["RoleBinding"]
    assert service.reconcile() == []  # complete as it is: nothing to restore on every tick
    cluster.objects[kept.id] = []
    assert [(a.kind, a.grant_id) for a in service.reconcile()] == [("restore", kept.id)]
