"""SqlGrantStore against real databases: SQLite always, PostgreSQL from a throwaway server.

The PostgreSQL server is started with initdb/pg_ctl in a temporary directory on a free loopback
port (or taken from KUBEJIT_TEST_DATABASE_URL); each test gets its own fresh database.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from kubejit.audit.chain import BROKEN_LINK, EDITED, GENESIS, SEQ_GAP, verify_chain
from kubejit.clock import FixedClock
from kubejit.errors import ApprovalRefused, ConfigError, Conflict, InvalidInput, InvalidTransition, NotFound
from kubejit.grants import lifecycle
from kubejit.grants.locks import Lock, LockKind
from kubejit.grants.model import Approval, Grant, GrantState
from kubejit.grants.ports import AuditEvent, AuditLog, GrantStore
from kubejit.identity.principal import Principal
from kubejit.ids import ClusterName, GrantId, NamespaceName, PrincipalName
from kubejit.policy.model import AccessRequest, Decision, Outcome, RoleRef
from kubejit.store import (
    SqlAuditStore,
    SqlGrantStore,
    StoreUnavailable,
    create_store_engine,
    current_revision,
    default_store_url,
    head_revision,
    upgrade,
)
from kubejit.store.grant_rows import grant_to_row
from kubejit.store.locks import SqlLockStore
from kubejit.store.migrate import alembic_config
from kubejit.store.tables import grants as grants_table
from kubejit.store.tables import metadata
from kubejit.store.transactions import driver_execute, read_transaction, write_transaction
from kubejit.store.users import SqlUserDirectory
from kubejit.testing.postgres import ThrowawayPostgres, postgres_bin_dir

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# -- a throwaway PostgreSQL ------------------------------------------------------------------------
PG_BIN = postgres_bin_dir()
PG_URL_FROM_ENV = os.environ.get("KUBEJIT_TEST_DATABASE_URL")
PG_AVAILABLE = PG_BIN is not None or bool(PG_URL_FROM_ENV)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    if PG_URL_FROM_ENV:
        yield PG_URL_FROM_ENV
        return
    assert PG_BIN is not None
    server = ThrowawayPostgres(PG_BIN)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()


@contextlib.contextmanager
def _fresh_postgres_database(admin_url: str) -> Iterator[str]:
    name = f"kubejit_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_AVAILABLE, reason="install postgresql (scripts/test does)"),
        ],
    ),
]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'kubejit.db'}"
        return
    with _fresh_postgres_database(request.getfixturevalue("postgres_admin_url")) as url:
        yield url


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = create_store_engine(store_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> SqlGrantStore:
    return SqlGrantStore(engine, clock=FixedClock(NOW))


@pytest.fixture
def audit(engine: Engine) -> SqlAuditStore:
    return SqlAuditStore(engine)


def test_sql_grant_store_implements_the_port(store: SqlGrantStore) -> None:
    port: GrantStore = store  # checked by mypy; at run time, the methods exist
    assert all(callable(getattr(port, name)) for name in ("add", "save", "get", "list", "record_token"))


def test_sql_audit_store_implements_the_port(audit: SqlAuditStore) -> None:
    port: AuditLog = audit  # checked by mypy; at run time, the method exists
    assert callable(port.record)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'kubejit.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


# -- helpers ---------------------------------------------------------------------------------------
def make_grant(grant_id: str = "g1", **changes: Any) -> Grant:
    grant = Grant(
        id=GrantId(grant_id),
        requester=PrincipalName("dev:alice"),
        cluster=ClusterName("prod"),
        namespaces=(NamespaceName("payments"),),
        role=RoleRef(name="view", kind="ClusterRole", ref_name="view"),
        duration=timedelta(hours=1),
        reason="incident 42",
        ticket=None,
        state=GrantState.PENDING,
        rule="oncall",
        created_at=NOW,
        pending_until=NOW + timedelta(hours=1),
    )
    return replace(grant, **changes)


def event(action: str = "grant.requested", grant_id: str | None = "g1", **details: Any) -> AuditEvent:
    return AuditEvent(
        action=action,
        actor="dev:alice",
        at=NOW,
        grant_id=GrantId(grant_id) if grant_id else None,
        subject="dev:alice",
        cluster="prod",
        details=details,
    )


def count_events(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one())


# -- grants ----------------------------------------------------------------------------------------
def test_a_grant_with_every_field_set_round_trips(store: SqlGrantStore) -> None:
    cest = timezone(timedelta(hours=2))
    grant = make_grant(
        namespaces=(NamespaceName("payments"), NamespaceName("billing")),
        role=RoleRef(name="edit-all", kind="Role", ref_name="edit", cluster_scope=True),
        duration=timedelta(minutes=90),
        reason="débogage ✓",
        ticket="INC-42",
        state=GrantState.ACTIVE,
        created_at=datetime(2026, 3, 1, 14, 0, 0, 123456, tzinfo=cest),
        pending_until=NOW + timedelta(minutes=5),
        approvals_required=2,
        approver_groups=frozenset({"sre", "security"}),
        approvals=(
            Approval(PrincipalName("dev:bob"), NOW + timedelta(seconds=1), "ok", person="bob@example.com"),
            Approval(PrincipalName("dev:carol"), datetime(2026, 3, 1, 14, 0, 2, tzinfo=cest)),
        ),
        break_glass=True,
        extendable=True,
        max_duration=timedelta(hours=4),
        activated_at=NOW + timedelta(seconds=3),
        expires_at=NOW + timedelta(minutes=93),
        ended_at=NOW + timedelta(minutes=10),
        ended_by=PrincipalName("dev:dave"),
        end_reason="done early",
        requester_person="alice@example.com",
    )

    added = store.add(grant, [event()])
    got = store.get(grant.id)

    assert added == replace(grant, version=1)
    assert got == added
    for moment in (got.created_at, got.pending_until, got.activated_at, got.expires_at, got.ended_at):
        assert moment is not None and moment.tzinfo is UTC
    assert all(a.at.tzinfo is UTC for a in got.approvals)
    assert got.created_at == datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_adding_an_existing_id_is_a_conflict_and_writes_nothing(store: SqlGrantStore, engine: Engine) -> None:
    store.add(make_grant(), [event()])
    with pytest.raises(Conflict, match="already exists"):
        store.add(make_grant(reason="other"), [event(), event()])
    assert store.get(GrantId("g1")).reason == "incident 42"
    assert count_events(engine) == 1


def test_save_bumps_the_version_and_appends_events(
    store: SqlGrantStore, audit: SqlAuditStore, engine: Engine
) -> None:
    grant = store.add(make_grant(), [event()])
    saved = store.save(replace(grant, state=GrantState.APPROVED), [event("grant.approved")])
    assert saved.version == 2
    assert store.get(grant.id) == saved
    assert [e.action for e in audit.iter_events()] == ["grant.requested", "grant.approved"]


def test_save_with_a_stale_version_is_a_conflict_and_writes_nothing(
    store: SqlGrantStore, audit: SqlAuditStore, engine: Engine
) -> None:
    read_by_a = store.add(make_grant(), [event()])
    read_by_b = store.get(read_by_a.id)
    winner = store.save(replace(read_by_a, state=GrantState.APPROVED), [event("grant.approved")])

    with pytest.raises(Conflict) as raised:
        store.save(replace(read_by_b, state=GrantState.DENIED), [event("grant.denied"), event("x")])

    assert raised.value.hint == "another replica changed this grant; retry"
    assert store.get(read_by_a.id) == winner
    assert count_events(engine) == 2
    assert audit.verify_audit().ok


def test_unknown_grants_are_not_found(store: SqlGrantStore, engine: Engine) -> None:
    with pytest.raises(NotFound, match="grant nope not found") as raised:
        store.get(GrantId("nope"))
    assert raised.value.hint
    with pytest.raises(NotFound):
        store.save(make_grant("nope", version=1), [event()])
    assert count_events(engine) == 0


def test_naive_times_are_refused_before_anything_is_written(store: SqlGrantStore, engine: Engine) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.add(make_grant(created_at=datetime(2026, 1, 1)), [event()])
    with pytest.raises(ValueError, match="naive"):
        store.add(make_grant(), [replace(event(), at=datetime(2026, 1, 1))])
    with pytest.raises(NotFound):
        store.get(GrantId("g1"))
    assert count_events(engine) == 0


def test_list_filters_and_orders_newest_first(store: SqlGrantStore) -> None:
    store.add(make_grant("g1"), [])
    store.add(make_grant("g2", created_at=NOW + timedelta(minutes=1), state=GrantState.ACTIVE), [])
    store.add(make_grant("g3", created_at=NOW + timedelta(minutes=2), requester=PrincipalName("dev:bob")), [])
    store.add(make_grant("g4", created_at=NOW + timedelta(minutes=3), cluster=ClusterName("staging")), [])

    assert [g.id for g in store.list()] == ["g4", "g3", "g2", "g1"]
    assert [g.id for g in store.list(requester=PrincipalName("dev:bob"))] == ["g3"]
    assert [g.id for g in store.list(cluster=ClusterName("staging"))] == ["g4"]
    assert [g.id for g in store.list(states=frozenset({GrantState.ACTIVE}))] == ["g2"]
    assert [g.id for g in store.list(requester=PrincipalName("dev:alice"), limit=2)] == ["g4", "g2"]
    assert store.list(states=frozenset()) == []
    with pytest.raises(InvalidInput, match="limit"):
        store.list(limit=0)


def test_due_for_expiry_returns_only_due_grants_earliest_first(store: SqlGrantStore) -> None:
    hour = timedelta(hours=1)
    due = {
        "active-due": make_grant("active-due", state=GrantState.ACTIVE, expires_at=NOW - 2 * hour),
        "approved-due": make_grant("approved-due", state=GrantState.APPROVED, expires_at=NOW - hour),
        "pending-due": make_grant("pending-due", pending_until=NOW - 90 * timedelta(minutes=1)),
        "active-now": make_grant("active-now", state=GrantState.ACTIVE, expires_at=NOW),
    }
    not_due = [
        make_grant("active-later", state=GrantState.ACTIVE, expires_at=NOW + hour),
        make_grant("approved-unactivated", state=GrantState.APPROVED, pending_until=NOW - hour),
        make_grant("pending-later", pending_until=NOW + hour),
        make_grant(
            "expired-long-ago", state=GrantState.EXPIRED, expires_at=NOW - hour, pending_until=NOW - hour
        ),
        make_grant("revoked", state=GrantState.REVOKED, expires_at=NOW - hour, pending_until=NOW - hour),
    ]
    for grant in [*due.values(), *not_due]:
        store.add(grant, [])

    found = store.due_for_expiry(NOW)

    assert [g.id for g in found] == ["active-due", "pending-due", "approved-due", "active-now"]
    assert [g.id for g in store.due_for_expiry(NOW, limit=2)] == ["active-due", "pending-due"]
    with pytest.raises(InvalidInput):
        store.due_for_expiry(NOW, limit=0)


def test_due_for_expiry_is_an_index_range_scan_on_sqlite(sqlite_engine: Engine) -> None:
    store = SqlGrantStore(sqlite_engine)
    for i in range(50):
        store.add(
            make_grant(f"g{i}", state=GrantState.ACTIVE, expires_at=NOW + timedelta(minutes=i - 25)), []
        )
    captured: list[tuple[str, Any]] = []

    def capture(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM grants" in statement:
            captured.append((statement, parameters))

    sa.event.listen(sqlite_engine, "before_cursor_execute", capture)
    try:
        assert len(store.due_for_expiry(NOW)) == 26
    finally:
        sa.event.remove(sqlite_engine, "before_cursor_execute", capture)

    assert len(captured) == 3
    with sqlite_engine.connect() as conn:
        plans = [
            " ".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
            for sql, params in captured
        ]
    for plan in plans:
        assert "SEARCH grants USING INDEX ix_grants_state_" in plan, plan
        assert "TEMP B-TREE" not in plan, plan  # ordered by the index itself: no sort
    assert sum("ix_grants_state_expires_at (state=? AND expires_at<?)" in p for p in plans) == 2
    assert sum("ix_grants_state_pending_until (state=? AND pending_until<?)" in p for p in plans) == 1


def test_requesters_and_state_counts(store: SqlGrantStore) -> None:
    store.add(make_grant("g1", state=GrantState.ACTIVE), [])
    store.add(make_grant("g2", state=GrantState.ACTIVE, created_at=NOW + timedelta(hours=1)), [])
    store.add(make_grant("g3", state=GrantState.EXPIRED, requester=PrincipalName("dev:bob")), [])

    people = store.list_requesters()
    assert [(p.requester, p.last_request_at, p.active_grants) for p in people] == [
        ("dev:alice", NOW + timedelta(hours=1), 2),
        ("dev:bob", NOW, 0),
    ]
    assert people[0].last_request_at.tzinfo is UTC
    counts = store.count_by_state()
    assert counts["active"] == 2
    assert counts["expired"] == 1
    assert counts["pending"] == 0
    assert set(counts) == {state.value for state in GrantState}


# -- tokens ----------------------------------------------------------------------------------------
def test_tokens_are_kept_as_hash_and_id_only(store: SqlGrantStore, engine: Engine) -> None:
    store.add(make_grant(), [])
    digest = "ab" * 32
    store.record_token(
        GrantId("g1"), token_id="jti-1", token_sha256=digest, expires_at=NOW + timedelta(hours=1)
    )

    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM tokens")).mappings().one()
    assert set(row) == {"id", "grant_id", "token_id", "token_sha256", "expires_at", "created_at"}
    assert (row["grant_id"], row["token_id"], row["token_sha256"]) == ("g1", "jti-1", digest)

    with pytest.raises(Conflict, match="already recorded"):
        store.record_token(GrantId("g1"), token_id="jti-1", token_sha256=digest, expires_at=NOW)
    with pytest.raises(NotFound):
        store.record_token(GrantId("nope"), token_id="jti-2", token_sha256="cd" * 32, expires_at=NOW)


def test_get_with_tokens_counts_the_tokens_minted_for_that_grant_only(store: SqlGrantStore) -> None:
    store.add(make_grant(), [])
    store.add(make_grant(id="g2"), [])
    assert store.get_with_tokens(GrantId("g1")) == (store.get(GrantId("g1")), 0)
    for n in range(2):
        store.record_token(GrantId("g1"), token_id=f"jti-{n}", token_sha256=f"{n:064x}", expires_at=NOW)
    assert store.get_with_tokens(GrantId("g1"))[1] == 2
    assert store.get_with_tokens(GrantId("g2"))[1] == 0
    with pytest.raises(NotFound):
        store.get_with_tokens(GrantId("nope"))


def test_a_token_passed_instead_of_its_hash_is_refused_without_echoing_it(store: SqlGrantStore) -> None:
    store.add(make_grant(), [])
    secret = "eyJhbGciOiJSUzI1NiJ9.secret-token-value"
    with pytest.raises(InvalidInput) as raised:
        store.record_token(GrantId("g1"), token_id="jti", token_sha256=secret, expires_at=NOW)
    assert "secret-token-value" not in f"{raised.value} {raised.value.hint}"


# -- the audit chain -------------------------------------------------------------------------------
def test_events_are_chained_across_transactions(store: SqlGrantStore, audit: SqlAuditStore) -> None:
    grant = store.add(make_grant(), [event(), event("grant.break_glass")])
    store.save(replace(grant, state=GrantState.APPROVED), [event("grant.approved", when=NOW)])
    audit.record([event("token.minted", token_id="jti")])
    audit.record([])

    events = list(audit.iter_events(batch=2))
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert events[0].prev_hash == GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(events))
    assert events[2].details["when"] == "2026-03-01T12:00:00.000000Z"
    assert all(e.at == NOW and e.at.tzinfo is UTC for e in events)
    assert len({e.event_id for e in events}) == 4
    result = audit.verify_audit()
    assert result.ok and result.checked == 4
    assert audit.audit_head() == (4, events[-1].hash) == (result.last_seq, result.head_hash)
    assert [e.seq for e in audit.iter_events(after_seq=2)] == [3, 4]
    assert audit.verify_audit(after_seq=2, prev_hash=events[1].hash).ok
    with pytest.raises(InvalidInput, match="needs the hash"):
        audit.verify_audit(after_seq=2)


def test_search_events_filters_newest_first(store: SqlGrantStore, audit: SqlAuditStore) -> None:
    audit.record([event("a", grant_id="g1")])
    audit.record([replace(event("b", grant_id="g2"), actor="dev:bob", at=NOW + timedelta(minutes=1))])
    audit.record([replace(event("c", grant_id="g1"), cluster="staging", at=NOW + timedelta(minutes=2))])

    def actions(**filters: Any) -> list[str]:
        return [e.action for e in audit.search_events(**filters)]

    assert actions() == ["c", "b", "a"]
    assert actions(grant_id=GrantId("g1")) == ["c", "a"]
    assert actions(actor="dev:bob") == ["b"]
    assert actions(cluster="staging") == ["c"]
    assert actions(action="b") == ["b"]
    assert actions(since=NOW + timedelta(minutes=1)) == ["c", "b"]
    assert actions(until=NOW + timedelta(minutes=1)) == ["a"]
    assert actions(limit=1) == ["c"]
    assert actions(before_seq=3, limit=1) == ["b"]
    assert actions(grant_id=GrantId("g1"), cluster="prod") == ["a"]
    with pytest.raises(InvalidInput):
        audit.search_events(limit=0)


def test_concurrent_writers_on_two_engines_keep_one_valid_chain(store_url: str, engine: Engine) -> None:
    writers, transactions = 2, 40
    engines = [create_store_engine(store_url) for _ in range(writers)]
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(index: int) -> None:
        writer = SqlAuditStore(engines[index])
        try:
            barrier.wait()
            for n in range(transactions):
                writer.record([event(f"w{index}.{n}.a"), event(f"w{index}.{n}.b")])
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for e in engines:
        e.dispose()

    assert errors == []
    events = list(SqlAuditStore(engine).iter_events())
    assert [e.seq for e in events] == list(range(1, writers * transactions * 2 + 1))
    # Each transaction's two events are adjacent: appends never interleave.
    for first, second in zip(events[::2], events[1::2], strict=True):
        assert first.action.removesuffix(".a") == second.action.removesuffix(".b")
    result = verify_chain(events)
    assert result.ok and result.checked == writers * transactions * 2


@pytest.fixture
def chained(audit: SqlAuditStore) -> SqlAuditStore:
    for n in range(1, 6):
        audit.record([event(f"e{n}", n=n)])
    assert audit.verify_audit().ok
    return audit


def _tamper(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def test_verify_detects_an_edited_row(chained: SqlAuditStore, engine: Engine) -> None:
    _tamper(engine, "UPDATE audit_events SET actor = 'dev:mallory' WHERE seq = 3")
    result = chained.verify_audit()
    assert (result.ok, result.first_bad_seq, result.problem, result.last_seq) == (False, 3, EDITED, 2)


def test_verify_detects_edited_details(chained: SqlAuditStore, engine: Engine) -> None:
    _tamper(engine, """UPDATE audit_events SET details = '{"n":33}' WHERE seq = 3""")
    assert (chained.verify_audit().first_bad_seq, chained.verify_audit().problem) == (3, EDITED)


def test_verify_detects_a_deleted_row(chained: SqlAuditStore, engine: Engine) -> None:
    _tamper(engine, "DELETE FROM audit_events WHERE seq = 2")
    result = chained.verify_audit()
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 3, SEQ_GAP)


def test_verify_detects_a_deleted_first_row(chained: SqlAuditStore, engine: Engine) -> None:
    _tamper(engine, "DELETE FROM audit_events WHERE seq = 1")
    result = chained.verify_audit()
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 2, SEQ_GAP)


def test_verify_detects_swapped_rows(chained: SqlAuditStore, engine: Engine) -> None:
    _tamper(
        engine,
        "UPDATE audit_events SET seq = -1 WHERE seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = -1",
    )
    result = chained.verify_audit()
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 2, BROKEN_LINK)


def test_verify_detects_a_rehashed_row_by_the_next_link(chained: SqlAuditStore, engine: Engine) -> None:
    _tamper(engine, "UPDATE audit_events SET hash = '" + "f" * 64 + "' WHERE seq = 4")
    result = chained.verify_audit()
    assert (result.first_bad_seq, result.problem) == (4, EDITED)
    _tamper(engine, "UPDATE audit_events SET prev_hash = '" + "e" * 64 + "' WHERE seq = 2")
    result = chained.verify_audit()
    assert (result.first_bad_seq, result.problem) == (2, BROKEN_LINK)


# -- migrations ------------------------------------------------------------------------------------
def test_migrations_have_exactly_one_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads == [head_revision()]


def test_upgrade_migrates_an_empty_database_to_head_and_matches_the_tables(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        upgrade(engine)  # a second run is a no-op
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_0003_locks_downgrades_to_0002_and_upgrades_again(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        upgrade(engine)
        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0002")
        assert current_revision(engine) == "0002" and "locks" not in sa.inspect(engine).get_table_names()
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        assert {ix["name"] for ix in sa.inspect(engine).get_indexes("locks")} == {
            "ix_locks_kind_target",
            "ix_locks_expires_at",
        }
    finally:
        engine.dispose()


def test_0004_requester_person_downgrades_to_0003_and_upgrades_again(store_url: str) -> None:
    """Rows written before 0004 keep working (no person), and a downgrade drops only the column."""
    engine = create_store_engine(store_url)
    try:
        upgrade(engine)
        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0003")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("grants")}
        assert current_revision(engine) == "0003" and "requester_person" not in columns
        row = {k: v for k, v in {**grant_to_row(make_grant("gold")), "version": 1}.items() if k in columns}
        with engine.begin() as conn:  # a row as 0003 wrote it: only the columns it names are inserted
            conn.execute(sa.insert(grants_table), row)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        assert SqlGrantStore(engine).get(GrantId("gold")).requester_person is None
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_0005_reviews_downgrades_to_0004_and_upgrades_again(store_url: str) -> None:
    """Rows written before 0005 read as not flagged, no reviewers, no review; a downgrade drops the columns."""
    engine = create_store_engine(store_url)
    try:
        upgrade(engine)
        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0004")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("grants")}
        assert current_revision(engine) == "0004"
        assert not columns & {"reviewer_groups", "needs_review", "review"}
        assert "ix_grants_needs_review" not in {ix["name"] for ix in sa.inspect(engine).get_indexes("grants")}
        old = make_grant("gold", break_glass=True, state=GrantState.ACTIVE)
        row = {k: v for k, v in {**grant_to_row(old), "version": 1}.items() if k in columns}
        with engine.begin() as conn:  # a row as 0004 wrote it
            conn.execute(sa.insert(grants_table), row)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        read = SqlGrantStore(engine).get(GrantId("gold"))
        assert (read.reviewer_groups, read.needs_review, read.review) == (frozenset(), False, None)
        assert SqlGrantStore(engine).needing_review() == []
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


# -- locks -----------------------------------------------------------------------------------------
def _lock(lock_id: str, kind: LockKind, target: str, **changes: Any) -> Lock:
    return replace(
        Lock(id=lock_id, kind=kind, target=target, reason="offboarding", created_by="root", created_at=NOW),
        **changes,
    )


def test_locks_are_kept_with_their_audit_events_and_found_by_principal(
    engine: Engine, store_url: str
) -> None:
    store = SqlLockStore(engine)
    created = [
        _lock("l1", LockKind.USER, "dev:alice"),
        _lock("l2", LockKind.GROUP, "sre", expires_at=NOW + timedelta(hours=1)),
        _lock("l3", LockKind.GRANT, "g1"),
        _lock("l4", LockKind.USER, "dev:bob"),
    ]
    for lock in created:
        store.add_lock(lock, [event("lock.created", grant_id=None, lock=lock.id)])
    found = store.active_locks(NOW, users=["dev:alice"], groups=["sre", "dev"], grants=["g1"])
    assert sorted(lk.id for lk in found) == ["l1", "l2", "l3"]
    later = NOW + timedelta(hours=1)
    assert [lk.id for lk in store.active_locks(later, groups=["sre"])] == []  # past its end: not in force
    assert [lk.id for lk in store.due_locks(later)] == ["l2"] and store.due_locks(NOW) == []
    assert store.active_locks(NOW) == []
    removed = replace(created[0], removed_at=later, removed_by="root2")
    store.remove_lock(removed, [event("lock.removed", grant_id=None, lock="l1")])
    with pytest.raises(InvalidTransition):  # a second admin (or replica) removing it too
        store.remove_lock(removed, [event("lock.removed", grant_id=None, lock="l1")])
    assert store.get_lock("l1") == removed and store.get_lock("l2").expires_at == later
    with pytest.raises(NotFound):
        store.get_lock("l9")
    assert [lk.id for lk in store.list_locks()] == ["l4", "l3", "l2"]
    assert len(store.list_locks(include_removed=True)) == 4
    audit = SqlAuditStore(engine)
    assert audit.verify_audit().ok
    assert [e.action for e in audit.search_events(action="lock.removed")] == ["lock.removed"]
    restarted = create_store_engine(store_url)  # locks survive a restart of the broker
    try:
        assert [lk.id for lk in SqlLockStore(restarted).active_locks(NOW, users=["dev:bob"])] == ["l4"]
    finally:
        restarted.dispose()


def test_people_in_group_come_from_the_people_seen(engine: Engine) -> None:
    users = SqlUserDirectory(engine, clock=FixedClock(NOW))
    users.seen(Principal("dev:alice", frozenset({"developers", "sre"})))
    users.seen(Principal("dev:bob", frozenset({"sre"})))
    users.seen(Principal("dev:carol", frozenset({"developers"})))
    assert SqlLockStore(engine).people_in_group("sre") == ["dev:alice", "dev:bob"]
    assert SqlLockStore(engine).people_in_group("nobody") == []


# -- engines ---------------------------------------------------------------------------------------
def test_sqlite_engine_settings(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    assert pragma == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1, "busy_timeout": 5000}


def test_sqlite_writes_begin_immediate(sqlite_engine: Engine, tmp_path: Path) -> None:
    """A write transaction holds the writer lock from its first moment (before any statement), a read none."""
    other = sqlite3.connect(tmp_path / "kubejit.db", timeout=0, isolation_level=None)
    try:
        with write_transaction(sqlite_engine), pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        with read_transaction(sqlite_engine):
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
    finally:
        other.close()


def test_sqlite_busy_writer_lock_is_store_unavailable(sqlite_engine: Engine, tmp_path: Path) -> None:
    """BEGIN IMMEDIATE is sent past SQLAlchemy's statement machinery; its errors still become StoreUnavailable."""
    other = sqlite3.connect(tmp_path / "kubejit.db", timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    engine = create_store_engine(f"sqlite:///{tmp_path / 'kubejit.db'}")
    engine.dispose()
    sa.event.listen(engine, "connect", lambda dbapi, _rec: dbapi.execute("PRAGMA busy_timeout=0"))
    try:
        with pytest.raises(StoreUnavailable, match="the database did not answer: database is locked"):
            SqlAuditStore(engine).record([event()])
    finally:
        other.execute("ROLLBACK")
        other.close()
        engine.dispose()


def test_sqlite_parent_directory_is_created(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'kubejit.db'}")
    engine.dispose()
    assert (tmp_path / "a" / "b" / "kubejit.db").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "invalid store URL"),
        ("mysql://user@localhost/kubejit", "unsupported store URL scheme 'mysql'"),
        ("postgresql+psycopg2://user@localhost/kubejit", "unsupported store URL scheme"),
        ("sqlite+aiosqlite:///x.db", "unsupported store URL scheme"),
        ("oracle+cx_oracle://user@localhost/kubejit", "unsupported store URL scheme 'oracle"),
    ],
)
def test_bad_store_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        create_store_engine(url)
    assert raised.value.hint


@pytest.mark.postgres
def test_the_postgres_scheme_is_taken_for_postgresql(postgres_admin_url: str) -> None:
    """``postgres://`` (as Heroku and many tools spell it) is PostgreSQL, not an unknown dialect."""
    engine = create_store_engine(postgres_admin_url.replace("postgresql+psycopg://", "postgres://", 1))
    try:
        with engine.connect() as conn:
            assert conn.dialect.name == "postgresql"
    finally:
        engine.dispose()


def test_password_is_not_shown_in_errors() -> None:
    with pytest.raises(ConfigError) as raised:
        create_store_engine("mysql://user:hunter2@localhost/kubejit")
    assert "hunter2" not in str(raised.value)


def test_unwritable_sqlite_paths_are_config_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot create the directory"):
        create_store_engine(f"sqlite:///{blocker / 'kubejit.db'}")
    with pytest.raises(ConfigError, match="not a writable file"):
        create_store_engine(f"sqlite:///{tmp_path}")
    not_a_db = tmp_path / "notes.db"
    not_a_db.write_text("this is not a database" * 100)
    with pytest.raises(ConfigError, match="cannot open SQLite database"):
        create_store_engine(f"sqlite:///{not_a_db}")


def test_in_memory_sqlite_works_for_single_threaded_tests() -> None:
    engine = create_store_engine("sqlite://")
    upgrade(engine)
    store = SqlGrantStore(engine)
    store.add(make_grant(), [event()])
    assert store.get(GrantId("g1")).version == 1
    assert SqlAuditStore(engine).verify_audit().ok
    engine.dispose()


def test_an_unreachable_database_is_store_unavailable_without_secrets() -> None:
    engine = create_store_engine(f"postgresql+psycopg://kubejit:hunter2@127.0.0.1:{_free_port()}/kubejit")
    try:
        with pytest.raises(StoreUnavailable) as raised:
            upgrade(engine)
        assert "hunter2" not in str(raised.value)
        with pytest.raises(StoreUnavailable):
            SqlAuditStore(engine).record([event()])
        with pytest.raises(StoreUnavailable):
            current_revision(engine)
    finally:
        engine.dispose()


def test_postgresql_without_a_driver_name_uses_psycopg() -> None:
    engine = create_store_engine("postgresql://user@127.0.0.1:1/kubejit")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_default_store_url_follows_xdg() -> None:
    assert (
        default_store_url({"XDG_DATA_HOME": "/data", "HOME": "/home/a"})
        == "sqlite:////data/kubejit/kubejit.db"
    )
    assert default_store_url({"HOME": "/home/a"}) == "sqlite:////home/a/.local/share/kubejit/kubejit.db"
    # A relative XDG_DATA_HOME is invalid by the spec and ignored.
    assert default_store_url({"XDG_DATA_HOME": "rel", "HOME": "/home/a"}).startswith("sqlite:////home/a/")


def test_pending_for_filters_in_sql_so_old_requests_are_not_hidden(
    store: SqlGrantStore, engine: Engine
) -> None:
    """1,500 pending grants; only the 3 oldest are the sre's to decide: all 3 come back."""
    rows = []
    for n in range(1500):
        groups = frozenset({"sre", "platform"}) if n < 3 else frozenset({"security"})
        requester = PrincipalName("dev:bob" if n == 1 else "dev:alice")
        grant = make_grant(
            f"g{n:05}", created_at=NOW + timedelta(seconds=n), approver_groups=groups, requester=requester
        )
        rows.append({**grant_to_row(grant), "version": 1})
    with engine.begin() as conn:
        conn.execute(sa.insert(grants_table), rows)
    store.add(make_grant("gdone", approver_groups=frozenset({"sre"}), state=GrantState.DENIED), [])

    found = store.pending_for(PrincipalName("dev:bob"), frozenset({"sre", "oncall"}))
    assert [g.id for g in found] == ["g00002", "g00000"]  # newest first; never bob's own (g00001)
    assert found[0].approver_groups == {"sre", "platform"}
    assert [g.id for g in store.pending_for(PrincipalName("dev:carol"), frozenset({"platform"}))] == [
        "g00002",
        "g00001",
        "g00000",
    ]
    assert len(store.pending_for(PrincipalName("dev:carol"), frozenset({"security"}), limit=2000)) == 1497
    assert store.pending_for(PrincipalName("dev:carol"), frozenset({"security"}), limit=10)[0].id == "g01499"
    assert store.pending_for(PrincipalName("dev:carol"), frozenset()) == []
    assert (
        store.pending_for(PrincipalName("dev:carol"), frozenset({'sre"', "%", "s"})) == []
    )  # exact names only


# -- one person, several logins ---------------------------------------------------------------------
OKTA_ALICE = Principal("okta:alice", frozenset({"developers"}), person="alice@corp.example")
GOOGLE_ALICE = Principal("google:alice", frozenset({"sre"}), person="alice@corp.example")


def test_self_approval_under_another_login_is_refused_on_a_reloaded_grant(store_url: str) -> None:
    """The requester's person survives a restart: the lifecycle still refuses their other login."""
    request = AccessRequest(cluster="prod", namespaces=("payments",), role="view", reason="incident 42")
    decision = Decision(
        outcome=Outcome.APPROVAL,
        rule="oncall",
        message="needs one approval",
        role=RoleRef(name="view", kind="ClusterRole", ref_name="view"),
        duration=timedelta(hours=1),
        approvals_required=1,
        approver_groups=frozenset({"sre"}),
    )
    grant = lifecycle.new_grant(
        GrantId("g1"), principal=OKTA_ALICE, request=request, decision=decision, now=NOW
    )
    first = create_store_engine(store_url)
    try:
        upgrade(first)
        SqlGrantStore(first).add(grant, [event()])
    finally:
        first.dispose()
    restarted = create_store_engine(store_url)  # another replica, or the broker after a restart
    try:
        reloaded = SqlGrantStore(restarted).get(GrantId("g1"))
    finally:
        restarted.dispose()
    assert reloaded.requester_person == "alice@corp.example"
    with pytest.raises(ApprovalRefused, match=r"your own request g1 \(made as okta:alice, the same person\)"):
        lifecycle.approve(reloaded, approver=GOOGLE_ALICE, comment="", now=NOW)
    with pytest.raises(ApprovalRefused, match="your own request"):
        lifecycle.deny(reloaded, approver=GOOGLE_ALICE, reason="", now=NOW)
    bob = Principal("okta:bob", frozenset({"sre"}), person="bob@corp.example")
    assert lifecycle.approve(reloaded, approver=bob, comment="", now=NOW).state is GrantState.APPROVED


def test_pending_for_leaves_out_a_persons_own_request_under_another_login(store: SqlGrantStore) -> None:
    sre = frozenset({"sre"})
    for grant_id, person in (("g1", "alice@corp.example"), ("g2", None), ("g3", "carol@corp.example")):
        grant = make_grant(grant_id, requester=PrincipalName(f"okta:{grant_id}"), requester_person=person)
        store.add(replace(grant, approver_groups=sre), [])
    mine = store.pending_for(PrincipalName("google:alice"), sre, approver_person="alice@corp.example")
    assert [g.id for g in mine] == ["g3", "g2"]  # never g1; unknown persons (g2) stay visible
    no_person = store.pending_for(PrincipalName("google:alice"), sre)
    assert sorted(g.id for g in no_person) == ["g1", "g2", "g3"]  # without a person: names only


# -- statements sent on the driver's cursor (store/transactions.py) --------------------------------
def test_prepared_statements_read_and_write_what_sqlalchemy_would(
    store: SqlGrantStore, engine: Engine
) -> None:
    """Prepared (compiled once, the driver's cursor) against Connection.execute, on both databases:
    the same typed values (tz-aware times, JSON lists, booleans) go in and come back."""
    from kubejit.store.grant_store import _GET

    approval = Approval(approver=PrincipalName("dev:sam"), at=NOW, comment="ok", person="sam@example.com")
    grant = make_grant(
        approvals=(approval,),
        approver_groups=frozenset({"sre", "platform"}),
        break_glass=True,
        activated_at=NOW,
        expires_at=NOW + timedelta(minutes=30),
    )
    stored = store.add(grant, [event()])
    saved = store.save(replace(stored, state=GrantState.APPROVED, ticket="INC-1"), [event()])
    with read_transaction(engine) as conn:
        fast = _GET.rows(conn, {"id": "g1"})
        slow = [
            dict(r._mapping) for r in conn.execute(sa.select(grants_table).where(grants_table.c.id == "g1"))
        ]
        assert _GET.rows(conn, {"id": "nope"}) == []
    assert fast == slow
    assert store.get(GrantId("g1")) == saved
    assert saved.expires_at is not None and saved.expires_at.tzinfo is not None


def test_driver_errors_are_wrapped_as_sqlalchemy_errors(engine: Engine) -> None:
    """A statement sent past SQLAlchemy still fails as a SQLAlchemy error, with no raw driver error."""
    with pytest.raises(sa.exc.DBAPIError) as raised, engine.connect() as conn:
        driver_execute(conn, "SELECT no_such_column FROM audit_events")
    assert "no_such_column" in str(raised.value.orig)
