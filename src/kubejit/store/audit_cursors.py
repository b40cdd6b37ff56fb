"""Audit sink cursors in SQL: how far each sink has got, its backoff, and its delivery lease.

The lease is a conditional UPDATE (free, expired or already ours), so only one broker replica sends
a sink's next batch at a time, on SQLite and PostgreSQL alike; ``advance`` moves the cursor only
for the lease holder and only from the position it claimed, so a replica whose lease ran out
cannot move a cursor that another one has moved since.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kubejit.audit.delivery.ports import LogTail, SinkCursor
from kubejit.audit.event import StoredEvent
from kubejit.clock import Clock, SystemClock
from kubejit.store import audit_log
from kubejit.store.tables import audit_events, audit_sink_cursors
from kubejit.store.transactions import read_transaction, write_transaction

_C = audit_sink_cursors.c


class SqlCursorStore:
    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or SystemClock()

    def ensure(self, sinks: Sequence[str]) -> None:
        with write_transaction(self.engine) as conn:
            known = set(conn.execute(sa.select(_C.sink)).scalars())
            new = [{"sink": s, "delivered_seq": 0, "attempts": 0} for s in sinks if s not in known]
            if new:
                conn.execute(sa.insert(audit_sink_cursors), new)

    def cursors(self) -> list[SinkCursor]:
        with read_transaction(self.engine) as conn:
            rows = conn.execute(sa.select(audit_sink_cursors).order_by(_C.sink)).all()
        return [_cursor(row._mapping) for row in rows]

    def tail(self) -> LogTail:
        query = sa.select(audit_events.c.seq, audit_events.c.at).order_by(audit_events.c.seq.desc()).limit(1)
        with read_transaction(self.engine) as conn:
            row = conn.execute(query).first()
        return LogTail(0, None) if row is None else LogTail(int(row.seq), row.at)

    def oldest_undelivered_at(self, seq: int) -> datetime | None:
        query = (
            sa.select(audit_events.c.at).where(audit_events.c.seq > seq).order_by(audit_events.c.seq).limit(1)
        )
        with read_transaction(self.engine) as conn:
            at: datetime | None = conn.execute(query).scalar()
        return at

    def claim(self, sink: str, *, owner: str, now: datetime, lease_until: datetime) -> SinkCursor | None:
        claimable = sa.and_(
            _C.sink == sink,
            sa.or_(_C.lease_until.is_(None), _C.lease_until <= now, _C.lease_owner == owner),
            sa.or_(_C.next_attempt_at.is_(None), _C.next_attempt_at <= now),
        )
        with write_transaction(self.engine) as conn:
            taken = conn.execute(
                sa.update(audit_sink_cursors)
                .where(claimable)
                .values(lease_owner=owner, lease_until=lease_until, last_attempt_at=now)
            ).rowcount
            if taken != 1:
                return None
            row = conn.execute(sa.select(audit_sink_cursors).where(_C.sink == sink)).one()
        return _cursor(row._mapping)

    def events_after(self, seq: int, *, limit: int) -> list[StoredEvent]:
        return list(itertools.islice(audit_log.iter_events(self.engine, after_seq=seq, batch=limit), limit))

    def advance(self, sink: str, *, owner: str, from_seq: int, to_seq: int, now: datetime) -> bool:
        values: dict[str, Any] = {
            "delivered_seq": to_seq,
            "attempts": 0,
            "last_error": None,
            "next_attempt_at": None,
            "lease_owner": None,
            "lease_until": None,
        }
        if to_seq > from_seq:
            values["last_delivered_at"] = now
        return self._update_held(sink, owner, values, _C.delivered_seq == from_seq)

    def fail(self, sink: str, *, owner: str, error: str, now: datetime, retry_at: datetime) -> bool:
        values = {
            "attempts": _C.attempts + 1,
            "last_error": error,
            "last_attempt_at": now,
            "next_attempt_at": retry_at,
            "lease_owner": None,
            "lease_until": None,
        }
        return self._update_held(sink, owner, values)

    def release(self, owner: str) -> int:
        """Free ``owner``'s leases, so another replica sends the next batch now, not at lease end.

        The cursor stays where it is: a batch in flight that was never acknowledged is sent again.
        """
        with write_transaction(self.engine) as conn:
            result = conn.execute(
                sa.update(audit_sink_cursors)
                .where(_C.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )
        return int(result.rowcount)

    def _update_held(self, sink: str, owner: str, values: dict[str, Any], *extra: Any) -> bool:
        with write_transaction(self.engine) as conn:
            result = conn.execute(
                sa.update(audit_sink_cursors)
                .where(_C.sink == sink, _C.lease_owner == owner, *extra)
                .values(**values)
            )
        return bool(result.rowcount == 1)


def _cursor(row: Any) -> SinkCursor:
    return SinkCursor(
        sink=row["sink"],
        delivered_seq=int(row["delivered_seq"]),
        attempts=int(row["attempts"]),
        last_error=row["last_error"],
        last_attempt_at=row["last_attempt_at"],
        last_delivered_at=row["last_delivered_at"],
        next_attempt_at=row["next_attempt_at"],
        lease_owner=row["lease_owner"],
        lease_until=row["lease_until"],
    )
