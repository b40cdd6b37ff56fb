"""The audit chain in SQL: append after the tail inside the caller's write transaction, and read back.

The caller must hold the writer lock (``transactions.write_transaction``); then reading the tail
and inserting after it cannot interleave with another writer, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kubejit.audit.chain import GENESIS, canonical_json, link
from kubejit.audit.event import StoredEvent
from kubejit.grants.ports import AuditEvent
from kubejit.ids import GrantId
from kubejit.store.tables import audit_events
from kubejit.store.transactions import read_transaction


def tail(conn: Connection) -> tuple[int, str]:
    """(seq, hash) of the last event, or (0, GENESIS) for an empty log."""
    row = conn.execute(
        sa.select(audit_events.c.seq, audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)
    ).first()
    return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))


def append(conn: Connection, events: Sequence[AuditEvent]) -> list[StoredEvent]:
    """Chain ``events`` after the tail and insert them; the caller's transaction commits them."""
    if not events:
        return []
    seq, prev_hash = tail(conn)
    stored = []
    for event in events:
        seq += 1
        linked = link(event, seq=seq, event_id=uuid.uuid4().hex, prev_hash=prev_hash)
        stored.append(linked)
        prev_hash = linked.hash
    conn.execute(sa.insert(audit_events), [_to_row(e) for e in stored])
    return stored


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


def _to_row(event: StoredEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "event_id": event.event_id,
        "at": event.at,
        "action": event.action,
        "actor": event.actor,
        "outcome": event.outcome,
        "grant_id": event.grant_id,
        "subject": event.subject,
        "cluster": event.cluster,
        "details": canonical_json(event.details),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


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
