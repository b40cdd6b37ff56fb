"""The GrantStore port's contract, run on every implementation: the in-memory fake, SQLite, PostgreSQL.

Service and API unit tests trust tests/fakes.py's ``MemoryStore``; these checks keep it honest. When
the two disagree, the SQL store is the reference and the fake is what gets fixed. Store-specific
properties (query plans, migrations, the audit chain's SQL) stay in test_store.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kubejit.clock import FixedClock
from kubejit.errors import Conflict, InvalidInput, NotFound
from kubejit.grants.model import Grant, GrantState, Review
from kubejit.grants.ports import AuditEvent, GrantStore
from kubejit.ids import ClusterName, GrantId, NamespaceName, PrincipalName
from kubejit.policy.model import RoleRef
from kubejit.store import SqlGrantStore, create_store_engine, upgrade
from tests.fakes import MemoryStore
from tests.integration.test_store import BACKENDS, _fresh_postgres_database, postgres_admin_url  # noqa: F401

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
ALICE, BOB, CAROL = PrincipalName("dev:alice"), PrincipalName("dev:bob"), PrincipalName("dev:carol")


@pytest.fixture(params=[pytest.param("memory", id="memory"), *BACKENDS])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GrantStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        yield from _sql_store(f"sqlite:///{tmp_path / 'kubejit.db'}")
        return
    with _fresh_postgres_database(request.getfixturevalue("postgres_admin_url")) as url:
        yield from _sql_store(url)


def _sql_store(url: str) -> Iterator[GrantStore]:
    engine = create_store_engine(url)
    upgrade(engine)
    try:
        yield SqlGrantStore(engine, clock=FixedClock(NOW))
    finally:
        engine.dispose()


def grant(grant_id: str = "g1", **changes: Any) -> Grant:
    made = Grant(
        id=GrantId(grant_id),
        requester=ALICE,
        cluster=ClusterName("prod"),
        namespaces=(NamespaceName("payments"),),
        role=RoleRef(name="view", kind="ClusterRole", ref_name="view"),
        duration=HOUR,
        reason="incident 42",
        ticket=None,
        state=GrantState.PENDING,
        rule="oncall",
        created_at=NOW,
        pending_until=NOW + HOUR,
        approver_groups=frozenset({"sre"}),
    )
    return replace(made, **changes)


def event(action: str = "grant.requested") -> AuditEvent:
    return AuditEvent(action=action, actor="dev:alice", at=NOW, grant_id=GrantId("g1"))


def ids(grants: list[Grant]) -> list[str]:
    return [g.id for g in grants]


# -- add, save, get --------------------------------------------------------------------------------
def test_add_stores_version_one_and_get_reads_it_back(store: GrantStore) -> None:
    added = store.add(grant(version=7), [event()])
    assert added == grant(version=1)
    assert store.get(GrantId("g1")) == added


def test_the_requesters_person_is_kept(store: GrantStore) -> None:
    """Self-approval under another login is refused from this field, also after a reload."""
    store.add(grant(requester_person="alice@corp.example"), [])
    assert store.get(GrantId("g1")).requester_person == "alice@corp.example"


def test_adding_an_existing_id_is_a_conflict_and_keeps_the_first(store: GrantStore) -> None:
    store.add(grant(), [])
    with pytest.raises(Conflict, match="already exists"):
        store.add(grant(reason="other"), [])
    assert store.get(GrantId("g1")).reason == "incident 42"


def test_save_bumps_the_version(store: GrantStore) -> None:
    added = store.add(grant(), [])
    saved = store.save(replace(added, state=GrantState.APPROVED), [event("grant.approved")])
    assert saved.version == 2 and saved.state is GrantState.APPROVED
    assert store.get(GrantId("g1")) == saved


def test_saving_a_stale_version_is_a_conflict_and_keeps_the_winner(store: GrantStore) -> None:
    read_by_a = store.add(grant(), [])
    read_by_b = store.get(read_by_a.id)
    winner = store.save(replace(read_by_a, state=GrantState.APPROVED), [])
    with pytest.raises(Conflict) as raised:
        store.save(replace(read_by_b, state=GrantState.DENIED), [])
    assert raised.value.hint == "another replica changed this grant; retry"
    assert store.get(read_by_a.id) == winner


def test_a_missing_id_is_not_found_everywhere(store: GrantStore) -> None:
    missing = GrantId("nope")
    with pytest.raises(NotFound, match="grant nope not found") as raised:
        store.get(missing)
    assert raised.value.hint
    with pytest.raises(NotFound):
        store.save(grant("nope", version=1), [])
    with pytest.raises(NotFound):
        store.get_with_tokens(missing)
    with pytest.raises(NotFound):
        store.record_token(missing, token_id="jti", token_sha256="ab" * 32, expires_at=NOW)


# -- list ------------------------------------------------------------------------------------------
def test_list_filters_and_orders_newest_first_then_by_id(store: GrantStore) -> None:
    store.add(grant("g1"), [])
    store.add(grant("g2", created_at=NOW + timedelta(minutes=1), state=GrantState.ACTIVE), [])
    store.add(grant("g3", created_at=NOW + timedelta(minutes=2), requester=BOB), [])
    store.add(grant("g4", created_at=NOW + timedelta(minutes=3), cluster=ClusterName("staging")), [])
    store.add(grant("g0", created_at=NOW + timedelta(minutes=3)), [])  # same time as g4: id breaks the tie

    assert ids(store.list()) == ["g4", "g0", "g3", "g2", "g1"]
    assert ids(store.list(requester=BOB)) == ["g3"]
    assert ids(store.list(cluster=ClusterName("staging"))) == ["g4"]
    assert ids(store.list(states=frozenset({GrantState.ACTIVE}))) == ["g2"]
    assert ids(store.list(states=frozenset({GrantState.ACTIVE, GrantState.PENDING}), limit=2)) == ["g4", "g0"]
    assert ids(store.list(requester=ALICE, cluster=ClusterName("prod"), limit=2)) == ["g0", "g2"]
    assert store.list(states=frozenset()) == []
    with pytest.raises(InvalidInput, match="limit"):
        store.list(limit=0)


# -- pending_for -----------------------------------------------------------------------------------
def test_pending_for_is_pending_grants_an_approver_group_decides_not_their_own(store: GrantStore) -> None:
    store.add(grant("g1"), [])
    store.add(
        grant("g2", created_at=NOW + timedelta(minutes=1), approver_groups=frozenset({"db", "sre"})), []
    )
    store.add(grant("g3", created_at=NOW + timedelta(minutes=2), requester=BOB), [])  # bob's own
    store.add(grant("g4", created_at=NOW + timedelta(minutes=3), state=GrantState.APPROVED), [])
    store.add(grant("g5", created_at=NOW + timedelta(minutes=4), approver_groups=frozenset({"db"})), [])

    assert ids(store.pending_for(BOB, frozenset({"sre"}))) == ["g2", "g1"]
    assert ids(store.pending_for(CAROL, frozenset({"sre", "db"}))) == ["g5", "g3", "g2", "g1"]
    assert ids(store.pending_for(CAROL, frozenset({"sre", "db"}), limit=1)) == ["g5"]
    assert store.pending_for(CAROL, frozenset()) == []
    assert store.pending_for(CAROL, frozenset({"s", "%"})) == []  # whole group names, no patterns
    with pytest.raises(InvalidInput, match="limit"):
        store.pending_for(CAROL, frozenset({"sre"}), limit=0)


def test_pending_for_leaves_out_a_persons_own_request_under_another_login(store: GrantStore) -> None:
    store.add(grant("g1", requester_person="bob@corp.example"), [])  # bob, logged in as dev:alice
    store.add(grant("g2", created_at=NOW + timedelta(minutes=1)), [])  # no person known: by name only
    assert ids(store.pending_for(BOB, frozenset({"sre"}), approver_person="bob@corp.example")) == ["g2"]
    assert ids(store.pending_for(BOB, frozenset({"sre"}))) == ["g2", "g1"]


# -- needing_review --------------------------------------------------------------------------------
def flagged(grant_id: str, minute: int, **changes: Any) -> Grant:
    """An active break-glass grant still needing review, made ``minute`` minutes after NOW."""
    base = {
        "state": GrantState.ACTIVE,
        "break_glass": True,
        "needs_review": True,
        "reviewer_groups": frozenset({"security"}),
        "created_at": NOW + timedelta(minutes=minute),
        "expires_at": NOW + HOUR,
    }
    return grant(grant_id, **{**base, **changes})


def test_a_review_and_its_flag_are_kept(store: GrantStore) -> None:
    store.add(flagged("g1", 0, reviewer_groups=frozenset({"security", "audit"})), [])
    read = store.get(GrantId("g1"))
    assert read.needs_review and read.reviewer_groups == {"security", "audit"} and read.review is None
    review = Review(BOB, NOW + HOUR, "checked: INC-42 rollback", person="bob@corp.example")
    store.save(replace(read, needs_review=False, review=review), [event("grant.reviewed")])
    again = store.get(GrantId("g1"))
    assert (again.needs_review, again.review) == (False, review)


def test_needing_review_is_flagged_grants_a_reviewer_group_may_review_not_their_own(
    store: GrantStore,
) -> None:
    store.add(flagged("g1", 0), [])
    store.add(flagged("g2", 1, reviewer_groups=frozenset({"audit", "security"})), [])
    store.add(flagged("g3", 2, requester=BOB), [])  # bob's own
    store.add(flagged("g4", 3, needs_review=False), [])  # reviewed already
    store.add(flagged("g5", 4, reviewer_groups=frozenset({"audit"})), [])
    store.add(flagged("g6", 5, reviewer_groups=frozenset(), requester_person="carol@corp.example"), [])

    assert ids(store.needing_review()) == ["g6", "g5", "g3", "g2", "g1"]  # everything flagged: admins
    assert ids(store.needing_review(limit=2)) == ["g6", "g5"]
    assert ids(store.needing_review(groups=frozenset({"security"}), excluding=BOB)) == ["g2", "g1"]
    assert ids(store.needing_review(groups=frozenset({"security", "audit"}), excluding=CAROL)) == [
        "g5",
        "g3",
        "g2",
        "g1",
    ]
    assert ids(store.needing_review(groups=frozenset({"audit"}), limit=1)) == ["g5"]
    assert store.needing_review(groups=frozenset()) == []
    assert store.needing_review(groups=frozenset({"sec%", "s"})) == []  # whole group names, no patterns
    # Another login of the holder (the same person) is left out too.
    own = store.needing_review(groups=frozenset({"security"}), excluding_person="bob@corp.example")
    assert ids(own) == ["g3", "g2", "g1"]
    store.add(flagged("g7", 6, requester_person="bob@corp.example"), [])
    own = store.needing_review(groups=frozenset({"security"}), excluding_person="bob@corp.example")
    assert ids(own) == ["g3", "g2", "g1"]
    with pytest.raises(InvalidInput, match="limit"):
        store.needing_review(limit=0)


# -- due_for_expiry --------------------------------------------------------------------------------
def test_due_for_expiry_is_what_has_run_out_earliest_first(store: GrantStore) -> None:
    due = [
        grant("active-due", state=GrantState.ACTIVE, expires_at=NOW - 2 * HOUR),
        grant("pending-due", pending_until=NOW - 90 * timedelta(minutes=1)),
        grant("approved-due", state=GrantState.APPROVED, expires_at=NOW - HOUR),
        grant("active-now", state=GrantState.ACTIVE, expires_at=NOW),  # expires_at <= now is due
    ]
    not_due = [
        grant("active-later", state=GrantState.ACTIVE, expires_at=NOW + HOUR),
        grant("approved-unactivated", state=GrantState.APPROVED, pending_until=NOW - HOUR),
        grant("pending-later", pending_until=NOW + HOUR),
        *(
            grant(str(state), state=state, expires_at=NOW - HOUR, pending_until=NOW - HOUR)
            for state in GrantState
            if state.ended
        ),
    ]
    for each in [*not_due, *reversed(due)]:  # stored out of order: the order is the store's
        store.add(each, [])

    assert ids(store.due_for_expiry(NOW)) == ids(due)
    assert ids(store.due_for_expiry(NOW, limit=2)) == ["active-due", "pending-due"]
    assert store.due_for_expiry(NOW - 3 * HOUR) == []
    with pytest.raises(InvalidInput, match="limit"):
        store.due_for_expiry(NOW, limit=0)


# -- tokens ----------------------------------------------------------------------------------------
def test_record_token_counts_per_grant_in_get_with_tokens(store: GrantStore) -> None:
    store.add(grant("g1"), [])
    store.add(grant("g2"), [])
    assert store.get_with_tokens(GrantId("g1")) == (store.get(GrantId("g1")), 0)
    for n in range(2):
        store.record_token(
            GrantId("g1"), token_id=f"jti-{n}", token_sha256=f"{n:064x}", expires_at=NOW + HOUR
        )
    assert store.get_with_tokens(GrantId("g1")) == (store.get(GrantId("g1")), 2)
    assert store.get_with_tokens(GrantId("g2"))[1] == 0


def test_a_token_recorded_twice_is_a_conflict(store: GrantStore) -> None:
    store.add(grant("g1"), [])
    store.add(grant("g2"), [])
    store.record_token(GrantId("g1"), token_id="jti-1", token_sha256="ab" * 32, expires_at=NOW)
    with pytest.raises(Conflict, match="already recorded"):
        store.record_token(GrantId("g2"), token_id="jti-2", token_sha256="ab" * 32, expires_at=NOW)
    assert store.get_with_tokens(GrantId("g2"))[1] == 0


@pytest.mark.parametrize("digest", ["AB" * 32, "ab" * 31, "eyJhbGciOiJSUzI1NiJ9.secret", ""])
def test_record_token_takes_a_lowercase_sha256_never_the_token(store: GrantStore, digest: str) -> None:
    store.add(grant("g1"), [])
    with pytest.raises(InvalidInput, match="sha256") as raised:
        store.record_token(GrantId("g1"), token_id="jti", token_sha256=digest, expires_at=NOW)
    assert not digest or digest not in raised.value.message
    assert store.get_with_tokens(GrantId("g1"))[1] == 0


# -- count_by_state --------------------------------------------------------------------------------
def test_count_by_state_names_every_state_zeros_included(store: GrantStore) -> None:
    assert store.count_by_state() == {state.value: 0 for state in GrantState}
    store.add(grant("g1", state=GrantState.ACTIVE, expires_at=NOW + HOUR), [])
    store.add(grant("g2", state=GrantState.ACTIVE, expires_at=NOW + HOUR), [])
    store.add(grant("g3", state=GrantState.EXPIRED), [])
    store.save(replace(store.get(GrantId("g3")), state=GrantState.REVOKED), [])
    expected = {state.value: 0 for state in GrantState} | {"active": 2, "revoked": 1}
    assert store.count_by_state() == expected
