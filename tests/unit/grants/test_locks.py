"""Offboarding that ends everything and sticks (locks), and extend/token mint re-checked against policy now."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest

from kubejit.clock import FixedClock
from kubejit.errors import (
    ClusterUnavailable,
    Conflict,
    InvalidInput,
    InvalidTransition,
    Locked,
    NotFound,
    PermissionDenied,
    RequestDenied,
)
from kubejit.grants import lifecycle
from kubejit.grants import offboarding as offboarding_module
from kubejit.grants.locks import LockKind
from kubejit.grants.model import Grant, GrantState
from kubejit.grants.ports import AuditEvent
from kubejit.grants.service import GrantService
from kubejit.identity.principal import Principal
from kubejit.ids import GrantId
from kubejit.policy.model import AccessRequest, Policy, Rule
from tests.fakes import FakeCluster, MemoryLockStore, MemoryStore
from tests.unit.grants.test_service import ADMIN, ALICE, BOB, CAROL, EDIT, POLICY, VIEW

pytestmark = pytest.mark.unit

ADMIN2 = Principal("root2", frozenset({"platform-admins"}))


@dataclass
class World:
    service: GrantService
    store: MemoryStore
    locks: MemoryLockStore
    cluster: FakeCluster
    clock: FixedClock

    def replica(self) -> GrantService:
        """A second broker on the same database (its own lock cache)."""
        return GrantService(
            store=self.store,
            audit=self.store,
            clusters={"dev": self.cluster},
            policy=self.service.policy,
            clock=self.clock,
            id_factory=self.service._new_id,
            locks=self.locks,
        )


def _world(store: MemoryStore | None = None, policy: Policy = POLICY) -> World:
    store = store or MemoryStore()
    cluster, clock, lock_store = FakeCluster(), FixedClock(), MemoryLockStore()
    ids = (GrantId(f"g{i}") for i in itertools.count(1))
    lock_ids = (f"l{i}" for i in itertools.count(1))
    service = GrantService(
        store=store,
        audit=store,
        clusters={"dev": cluster},
        policy=policy,
        clock=clock,
        id_factory=lambda: next(ids),
        locks=lock_store,
        lock_id_factory=lambda: next(lock_ids),
    )
    return World(service, store, lock_store, cluster, clock)


@pytest.fixture
def world() -> World:
    return _world()


def _open(store: MemoryStore, user: str = "alice") -> list[Grant]:
    return [g for g in store.grants.values() if g.requester == user and g.state in lifecycle.OPEN_STATES]


# -- offboarding ---------------------------------------------------------------------------------
def test_offboarding_ends_all_locks_and_a_second_run_ends_nothing(world: World) -> None:
    grants = [world.service.request(ALICE, VIEW) for _ in range(3)]
    pending = world.service.request(ALICE, EDIT)
    done = world.service.lockouts.revoke_user(ADMIN, "alice", reason="left the company")
    assert {g.id for g in done.grants.ended} == {*(g.id for g in grants), pending.id}
    assert done.grants.skipped == [] and done.grants.cleanup_deferred == []
    assert done.lock is not None and done.lock_created and done.lock.kind is LockKind.USER
    assert _open(world.store) == [] and world.cluster.objects == {}
    again = world.service.lockouts.revoke_user(ADMIN, "alice")
    assert (again.grants.ended, again.grants.skipped) == ([], [])
    assert again.lock == done.lock and not again.lock_created  # no second lock
    assert [e.action for e in world.locks.events] == ["lock.created"]


class ExpiresDuringOffboarding(MemoryStore):
    """Between offboarding's list and its save, the sweeper (another replica) ends some grants."""

    def __init__(self, expire: set[GrantId]) -> None:
        super().__init__()
        self.expire = expire

    def save(self, grant: Grant, events: Sequence[AuditEvent]) -> Grant:
        if grant.id in self.expire and grant.state is GrantState.REVOKED:
            self.expire.discard(grant.id)
            current = self.grants[grant.id]
            ended = lifecycle.expire(current, now=current.expires_at or current.pending_until)
            super().save(ended, [])
        return super().save(grant, events)


def test_offboarding_skips_grants_that_end_concurrently_and_ends_the_rest() -> None:
    """Before: the first grant that had expired meanwhile aborted it with 409, leaving the rest active."""
    store = ExpiresDuringOffboarding(set())
    world = _world(store)
    grants = [world.service.request(ALICE, VIEW) for _ in range(6)]
    store.expire = {grants[0].id, grants[3].id}
    done = world.service.lockouts.revoke_user(ADMIN, "alice")
    assert sorted(done.grants.skipped) == sorted([grants[0].id, grants[3].id])
    assert {g.id for g in done.grants.ended} == {g.id for g in grants} - set(done.grants.skipped)
    assert _open(store) == []
    assert {store.get(g).state for g in done.grants.skipped} == {GrantState.EXPIRED}


class ExtendedDuringOffboarding(MemoryStore):
    """A grant changes (but stays open) between list and save: it is ended on the next pass."""

    def __init__(self) -> None:
        super().__init__()
        self.bump: GrantId | None = None

    def save(self, grant: Grant, events: Sequence[AuditEvent]) -> Grant:
        if grant.id == self.bump and grant.state is GrantState.REVOKED:
            self.bump = None
            super().save(replace(self.grants[grant.id], reason="changed meanwhile"), [])
        return super().save(grant, events)


def test_a_grant_changed_but_still_open_is_ended_on_the_next_pass() -> None:
    store = ExtendedDuringOffboarding()
    world = _world(store)
    grants = [world.service.request(ALICE, VIEW) for _ in range(2)]
    store.bump = grants[1].id
    done = world.service.lockouts.revoke_user(ADMIN, "alice")
    assert {g.id for g in done.grants.ended} == {g.id for g in grants} and done.grants.skipped == []
    assert _open(store) == []


def test_offboarding_pages_through_more_grants_than_one_batch(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(offboarding_module, "END_BATCH", 2)
    grants = [world.service.request(ALICE, VIEW) for _ in range(7)]
    done = world.service.lockouts.revoke_user(ADMIN, "alice")
    assert len(done.grants.ended) == len(grants) and _open(world.store) == []


def test_unreachable_cluster_still_ends_grants_and_reports_deferred_cleanup(world: World) -> None:
    grants = [world.service.request(ALICE, VIEW) for _ in range(2)]
    world.cluster.fail_delete = ClusterUnavailable("connection refused")
    done = world.service.lockouts.revoke_user(ADMIN, "alice")
    assert sorted(done.grants.cleanup_deferred) == sorted(g.id for g in grants)
    assert _open(world.store) == []  # ended in the store: the reconciler removes the objects
    assert world.store.actions().count("grant.cleanup_deferred") == 2


def test_offboarding_without_lock_and_refusals(world: World) -> None:
    world.service.request(ALICE, VIEW)
    with pytest.raises(PermissionDenied):
        world.service.lockouts.revoke_user(BOB, "alice")
    assert len(_open(world.store)) == 1 and world.locks.locks == {}
    with pytest.raises(InvalidInput, match="lock you out"):  # an admin offboarding themselves, with a lock
        world.service.lockouts.revoke_user(ADMIN, "root")
    done = world.service.lockouts.revoke_user(ADMIN, "alice", lock=False)
    assert done.lock is None and len(done.grants.ended) == 1 and world.locks.locks == {}
    assert world.service.request(ALICE, VIEW).state is GrantState.ACTIVE


# -- locks ---------------------------------------------------------------------------------------
def test_offboarded_user_is_refused_and_unlock_lets_them_back(world: World) -> None:
    """Before: right after `revoke --user alice`, alice's still-valid token got a new auto-approved grant."""
    done = world.service.lockouts.revoke_user(ADMIN, "alice", reason="left")
    assert done.lock is not None
    with pytest.raises(Locked) as refused:
        world.service.check_not_locked(ALICE)
    assert done.lock.id in refused.value.message and "left" in refused.value.message
    assert "until an admin unlocks it" in refused.value.message
    assert refused.value.hint and "kubejit unlock" in refused.value.hint
    with pytest.raises(Locked):
        world.service.request(ALICE, VIEW)
    assert _open(world.store) == []
    world.service.check_not_locked(BOB)  # others are not affected
    removed = world.service.lockouts.unlock(ADMIN2, done.lock.id)
    assert removed.removed_by == "root2"
    world.service.check_not_locked(ALICE)
    assert world.service.request(ALICE, VIEW).state is GrantState.ACTIVE
    with pytest.raises(InvalidTransition):
        world.service.lockouts.unlock(ADMIN, done.lock.id)
    assert [e.action for e in world.locks.events] == ["lock.created", "lock.removed"]


def test_group_lock_refuses_members_and_ends_the_grants_of_people_seen_in_it(world: World) -> None:
    world.locks.people = {"alice": ALICE.groups, "bob": BOB.groups}
    alice = world.service.request(ALICE, VIEW)
    made = world.service.lockouts.lock(ADMIN, kind=LockKind.GROUP, target="developers", reason="incident 7")
    assert [g.id for g in made.grants.ended] == [alice.id] and _open(world.store) == []
    with pytest.raises(Locked, match="group developers"):
        world.service.check_not_locked(ALICE)
    world.service.check_not_locked(BOB)


def test_grant_lock_ends_the_grant_and_refuses_its_tokens(world: World) -> None:
    grant = world.service.request(ALICE, VIEW)
    other = world.service.request(ALICE, VIEW)
    made = world.service.lockouts.lock(ADMIN, kind=LockKind.GRANT, target=grant.id, reason="token leaked")
    assert [g.id for g in made.grants.ended] == [grant.id]
    assert world.store.get(other.id).state is GrantState.ACTIVE
    world.service.check_not_locked(ALICE)  # the person is not locked, only that grant
    world.service.issue_token(ALICE, other.id)
    with pytest.raises(InvalidTransition):  # ended; the lock also refuses it should it be live again
        world.service.issue_token(ALICE, grant.id)
    world.store.grants[grant.id] = replace(world.store.grants[grant.id], state=GrantState.ACTIVE)
    with pytest.raises(Locked, match=f"grant {grant.id}"):
        world.service.issue_token(ALICE, grant.id)


@pytest.mark.parametrize(
    ("kind", "target", "reason", "duration", "error", "match"),
    [
        (LockKind.USER, "root", "x", None, InvalidInput, "lock you out"),
        (LockKind.GROUP, "platform-admins", "x", None, InvalidInput, "every admin"),
        (LockKind.USER, "alice", "  ", None, InvalidInput, "needs a reason"),
        (LockKind.USER, "", "x", None, InvalidInput, "user name"),
        (LockKind.USER, "a" * 256, "x", None, InvalidInput, "user name"),
        (LockKind.USER, "alice", "x", timedelta(0), InvalidInput, "positive"),
        (LockKind.GRANT, "g999", "x", None, NotFound, "g999"),
    ],
)
def test_bad_locks_are_refused_and_write_nothing(
    world: World,
    kind: LockKind,
    target: str,
    reason: str,
    duration: timedelta | None,
    error: type[Exception],
    match: str,
) -> None:
    world.service.request(ALICE, VIEW)
    with pytest.raises(error, match=match):
        world.service.lockouts.lock(ADMIN, kind=kind, target=target, reason=reason, duration=duration)
    assert world.locks.locks == {} and world.locks.events == [] and len(_open(world.store)) == 1


def test_only_admins_manage_locks(world: World) -> None:
    made = world.service.lockouts.lock(ADMIN, kind=LockKind.USER, target="alice", reason="x")
    with pytest.raises(PermissionDenied):
        world.service.lockouts.lock(BOB, kind=LockKind.USER, target="carol", reason="x")
    with pytest.raises(PermissionDenied):
        world.service.lockouts.unlock(BOB, made.lock.id)
    with pytest.raises(PermissionDenied):
        world.service.lockouts.list_locks(BOB)
    assert [lk.id for lk in world.service.lockouts.list_locks(ADMIN)] == [made.lock.id]


def test_a_lock_ends_at_its_time_and_the_sweeper_records_it(world: World) -> None:
    made = world.service.lockouts.lock(
        ADMIN, kind=LockKind.USER, target="alice", reason="x", duration=timedelta(hours=1)
    )
    with pytest.raises(Locked, match="until 2026-01-01 01:00:00Z"):
        world.service.check_not_locked(ALICE)
    assert world.service.lockouts.expire_locks() == []
    world.clock.advance(timedelta(hours=1))
    world.service.check_not_locked(ALICE)  # no longer in force, swept or not
    assert [lk.id for lk in world.service.lockouts.expire_locks()] == [made.lock.id]
    assert world.service.lockouts.expire_locks() == [] and world.service.lockouts.list_locks(ADMIN) == []
    assert [e.action for e in world.locks.events] == ["lock.created", "lock.expired"]


def test_the_lock_check_is_cached_for_a_second_and_a_replica_cannot_leave_a_grant_behind(
    world: World,
) -> None:
    other = world.replica()
    other.check_not_locked(ALICE)
    queries = world.locks.queries
    for _ in range(50):
        other.check_not_locked(ALICE)
    assert world.locks.queries == queries  # one indexed query per principal and second, not per request
    world.service.lockouts.lock(ADMIN, kind=LockKind.USER, target="alice", reason="x")
    other.check_not_locked(ALICE)  # the other replica's cache may lag for up to a second...
    with pytest.raises(Locked):  # ...but a new grant is checked again, uncached, once stored
        other.request(ALICE, VIEW)
    assert _open(world.store) == []
    world.clock.advance(timedelta(seconds=1))
    with pytest.raises(Locked):
        other.check_not_locked(ALICE)


class LockedWhileAdding(MemoryStore):
    """The lock commits on another replica right after this grant is stored (before activation)."""

    def __init__(self) -> None:
        super().__init__()
        self.on_add: list[object] = []

    def add(self, grant: Grant, events: Sequence[AuditEvent]) -> Grant:
        stored = super().add(grant, events)
        for hook in self.on_add:
            hook()  # type: ignore[operator]
        self.on_add.clear()
        return stored


@pytest.mark.parametrize(("kind", "target"), [(LockKind.USER, "alice"), (LockKind.GROUP, "developers")])
def test_a_lock_racing_a_request_never_leaves_the_grant_open(kind: LockKind, target: str) -> None:
    """The lock is committed after the grant but listed nothing (alice's groups were never seen):
    the request's own uncached check after its write ends it."""
    store = LockedWhileAdding()
    world = _world(store)
    other = world.replica()
    store.on_add.append(lambda: other.lockouts.lock(ADMIN, kind=kind, target=target, reason="race"))
    with pytest.raises(Locked):
        world.service.request(ALICE, VIEW)
    assert _open(store) == [] and world.cluster.objects == {}


def test_activation_of_an_approved_grant_of_a_locked_user_is_refused(world: World) -> None:
    pending = world.service.request(ALICE, EDIT)
    world.service.approve(BOB, pending.id)
    world.locks.add_lock(  # as if created where the grant was not seen (e.g. restored by a backup)
        replace(
            world.service.lockouts.lock(ADMIN, kind=LockKind.USER, target="dave", reason="x").lock,
            id="lx",
            target="alice",
        ),
        [],
    )
    world.store.grants[pending.id] = replace(world.store.grants[pending.id], state=GrantState.PENDING)
    with pytest.raises(Locked):
        world.service.approve(CAROL, pending.id)
    assert world.store.get(pending.id).state is GrantState.REVOKED and world.cluster.objects == {}


# -- extend and token mint re-check policy for the caller as they are now ------------------------
def test_extend_and_token_are_refused_once_the_caller_left_the_group(world: World) -> None:
    """Before: a grant kept extending and minting tokens after its holder's groups were removed."""
    grant = world.service.request(ALICE, EDIT)
    world.service.approve(BOB, grant.id)
    grant = world.service.approve(CAROL, grant.id)
    former = Principal("alice", frozenset())
    with pytest.raises(RequestDenied, match="no longer allows") as refused:
        world.service.extend(former, grant.id, by=timedelta(minutes=5))
    assert refused.value.hint and "kubejit request" in refused.value.hint
    with pytest.raises(RequestDenied, match="cannot mint a token for"):
        world.service.issue_token(former, grant.id)
    assert world.store.tokens == [] and world.store.get(grant.id).expires_at == grant.expires_at
    assert world.store.actions().count("grant.no_longer_allowed") == 2
    world.service.issue_token(ALICE, grant.id)  # with the group back, it works
    world.service.extend(ALICE, grant.id, by=timedelta(minutes=5))


def test_a_deny_rule_added_later_refuses_token_mint(world: World) -> None:
    grant = world.service.request(ALICE, VIEW)
    deny = Rule(
        name="freeze",
        effect="deny",
        groups=frozenset({"developers"}),
        clusters=("dev",),
        namespaces=("team-*",),
        roles=("view",),
    )
    world.service.policy = replace(POLICY, rules=(deny, *POLICY.rules))
    with pytest.raises(RequestDenied) as refused:
        world.service.issue_token(ALICE, grant.id)
    assert refused.value.rule == "freeze"


def test_extension_is_held_to_the_rule_as_it_is_now(world: World) -> None:
    grant = world.service.request(ALICE, EDIT)
    world.service.approve(BOB, grant.id)
    grant = world.service.approve(CAROL, grant.id)
    rules = tuple(replace(r, extendable=False) if r.name == "dev-edit" else r for r in POLICY.rules)
    world.service.policy = replace(POLICY, rules=rules)
    with pytest.raises(RequestDenied, match="does not allow extending"):
        world.service.extend(ALICE, grant.id, by=timedelta(minutes=5))


def test_offboarding_gives_up_cleanly_when_grants_keep_changing(world: World) -> None:
    class Churn(MemoryStore):
        def save(self, grant: Grant, events: Sequence[AuditEvent]) -> Grant:
            if grant.state is GrantState.REVOKED:
                super().save(replace(self.grants[grant.id], reason="again"), [])
            return super().save(grant, events)

    churn = _world(Churn())
    churn.service.request(ALICE, AccessRequest(cluster="dev", namespaces=("team-a",), role="view"))
    with pytest.raises(Conflict, match="kept changing") as refused:
        churn.service.lockouts.revoke_user(ADMIN, "alice", lock=False)
    assert refused.value.hint and "again" in refused.value.hint
