"""The audit chain in SQL: append after the tail inside the caller's write transaction, and read back.

The caller must hold the writer lock (``transactions.write_transaction``); then reading the tail
and inserting after it cannot interleave with another writer, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine

from kubejit.audit.chain import GENESIS, seal_row
from kubejit.audit.event import StoredEvent, rfc3339
from kubejit.grants.origin import current_origin
from kubejit.grants.ports import AuditEvent
from kubejit.ids import GrantId
from kubejit.store.tables import audit_events
from kubejit.store.transactions import driver_execute, read_transaction

log = logging.getLogger(__name__)


def tail(conn: Connection) -> tuple[int, str]:
    """(seq, hash) of the last event, or (0, GENESIS) for an empty log."""
    rows = driver_execute(conn, _TAIL)
    return (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS)


def append(conn: Connection, events: Sequence[AuditEvent]) -> tuple[int, str]:
    """Chain ``events`` after the tail and insert them; the caller's transaction commits them.

    Returns the new tail (seq, hash). The hot path of every write: each value is encoded once
    (``seal_row``), and the tail and the rows go straight to the driver's cursor (a prebuilt INSERT,
    ``executemany``), past SQLAlchemy's statement machinery and per-row type processing. Within an
    HTTP request, each event's details gain its ``source_ip`` and ``user_agent`` (``grants.origin``)
    unless the event names them itself.
    """
    seq, prev_hash = tail(conn)
    if not events:
        return seq, prev_hash
    origin = current_origin()
    if origin is not None:  # inside an HTTP request: every event it causes names its origin
        events = [replace(e, details={**origin.details(), **e.details}) for e in events]
    sqlite = conn.dialect.name == "sqlite"
    # Event ids lead with the seq, so the unique index grows at its right edge (a random id sends
    # each insert to a random page: appends slowed down as the table grew); 64 random bits follow.
    noise = os.urandom(8 * len(events)).hex()
    rows = []
    for n, event in enumerate(events):
        seq += 1
        event_id = f"{seq:016x}{noise[16 * n : 16 * n + 16]}"
        at, details_json, digest = seal_row(event, seq=seq, event_id=event_id, prev_hash=prev_hash)
        rows.append(
            (
                seq, event_id, _sqlite_time(at) if sqlite else event.at, event.action, event.actor,
                event.outcome, event.grant_id, event.subject, event.cluster, details_json, prev_hash, digest,
            )
        )  # fmt: skip
        prev_hash = digest
    driver_execute(conn, _INSERT_SQLITE if sqlite else _INSERT_PYFORMAT, rows, many=True)
    conn.info.setdefault(_APPENDED, []).extend(events)  # for observe_committed, at commit
    return seq, prev_hash


_APPENDED = "kubejit.appended_events"


def observe_committed(engine: Engine, observer: Callable[[Sequence[AuditEvent]], None]) -> None:
    """Call ``observer`` with the events each transaction appended, as it commits (never on rollback).

    For /metrics: counters that follow the audit log count what is durable, once. The observer runs
    inside the commit, so it must be quick, and a failure of its own is logged, never raised.
    """

    def committed(conn: Connection) -> None:
        events = conn.info.pop(_APPENDED, None)
        if events:
            try:
                observer(events)
            except Exception:
                log.exception("an audit event observer failed")

    def rolled_back(conn: Connection) -> None:
        conn.info.pop(_APPENDED, None)

    sa_event.listen(engine, "commit", committed)
    sa_event.listen(engine, "rollback", rolled_back)


#: Every write reads the tail: plain SQL on the driver's cursor (two untyped columns, both dialects).
_TAIL = "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
_COLUMNS = "seq, event_id, at, action, actor, outcome, grant_id, subject, cluster, details, prev_hash, hash"
_INSERT_SQLITE = f"INSERT INTO audit_events ({_COLUMNS}) VALUES ({', '.join(['?'] * 12)})"
_INSERT_PYFORMAT = f"INSERT INTO audit_events ({_COLUMNS}) VALUES ({', '.join(['%s'] * 12)})"


def _sqlite_time(rfc3339_text: str) -> str:
    """SQLAlchemy's SQLite DATETIME spelling (``2026-03-01 12:00:00.000000``) of an RFC 3339 UTC time."""
    return f"{rfc3339_text[:10]} {rfc3339_text[11:26]}"


def sqlite_time_to_rfc3339(stored: str) -> str:
    """The inverse of ``_sqlite_time`` for a well-formed value; anything else is parsed and respelled."""
    if len(stored) == 26 and stored[10] == " ":
        return f"{stored[:10]}T{stored[11:]}Z"
    moment = datetime.fromisoformat(stored)
    return rfc3339(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def iter_events(engine: Engine, *, after_seq: int = 0, batch: int = 5000) -> Iterator[StoredEvent]:
    """All events after ``after_seq`` in seq order, read in batches (keyset paging: constant memory)."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    while True:
        query = (
            sa.select(audit_events)
            .where(audit_events.c.seq > after_seq)
            .order_by(audit_events.c.seq)
            .limit(batch)
        )
        with read_transaction(engine) as conn:
            rows = conn.execute(query).all()
        for row in rows:
            yield _from_row(row._mapping)
        if len(rows) < batch:
            return
        after_seq = int(rows[-1].seq)


def search(
    engine: Engine,
    *,
    grant_id: GrantId | None = None,
    actor: str | None = None,
    cluster: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_seq: int | None = None,
    limit: int = 100,
) -> list[StoredEvent]:
    """Matching events, newest first; page with ``before_seq`` = the last seq of the previous page."""
    c = audit_events.c
    conditions = [
        column == value
        for column, value in (
            (c.grant_id, grant_id),
            (c.actor, actor),
            (c.cluster, cluster),
            (c.action, action),
        )
        if value is not None
    ]
    if since is not None:
        conditions.append(c.at >= since)
    if until is not None:
        conditions.append(c.at < until)
    if before_seq is not None:
        conditions.append(c.seq < before_seq)
    query = sa.select(audit_events).where(*conditions).order_by(c.seq.desc()).limit(limit)
    with read_transaction(engine) as conn:
        return [_from_row(row._mapping) for row in conn.execute(query)]


def find(
    engine: Engine,
    *,
    person: str | None = None,
    cluster: str | None = None,
    grant_id: str | None = None,
    actions: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    newest_first: bool = True,
    batch: int = 2000,
) -> Iterator[StoredEvent]:
    """Every matching event, streamed in keyset pages; ``person`` matches the actor or the subject.

    Callers filter further in Python (a namespace inside ``details``) and stop when they have enough.
    """
    c = audit_events.c
    conditions: list[sa.ColumnElement[bool]] = []
    if person is not None:
        conditions.append(sa.or_(c.actor == person, c.subject == person))
    if cluster is not None:
        conditions.append(c.cluster == cluster)
    if grant_id is not None:
        conditions.append(c.grant_id == grant_id)
    if actions:
        conditions.append(c.action.in_(list(actions)))
    if since is not None:
        conditions.append(c.at >= since)
    if until is not None:
        conditions.append(c.at < until)
    order = c.seq.desc() if newest_first else c.seq
    cursor: int | None = None
    while True:
        page = list(conditions)
        if cursor is not None:
            page.append(c.seq < cursor if newest_first else c.seq > cursor)
        query = sa.select(audit_events).where(*page).order_by(order).limit(batch)
        with read_transaction(engine) as conn:
            rows = conn.execute(query).all()
        yield from (_from_row(row._mapping) for row in rows)
        if len(rows) < batch:
            return
        cursor = int(rows[-1].seq)


def _from_row(row: Any) -> StoredEvent:
    return StoredEvent(
        seq=int(row["seq"]),
        event_id=row["event_id"],
        action=row["action"],
        actor=row["actor"],
        at=row["at"],
        outcome=row["outcome"],
        grant_id=GrantId(row["grant_id"]) if row["grant_id"] is not None else None,
        subject=row["subject"],
        cluster=row["cluster"],
        details=json.loads(row["details"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )
