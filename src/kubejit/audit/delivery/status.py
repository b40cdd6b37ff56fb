"""Delivery lag per sink, as `kubejit audit status` shows it (pure: cursors and the log's tail in)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubejit.audit.delivery.ports import CursorStore, LogTail, SinkCursor
from kubejit.audit.event import rfc3339


@dataclass(frozen=True)
class SinkStatus:
    sink: str
    delivered_seq: int
    #: Events recorded but not yet acknowledged by the sink.
    lag_events: int
    #: Age of the oldest event the sink has not acknowledged (0 when caught up).
    lag_seconds: float
    attempts: int
    last_error: str | None
    last_delivered_at: datetime | None
    next_attempt_at: datetime | None
    required: bool = False

    def to_dict(self) -> dict[str, Any]:
        def when(moment: datetime | None) -> str | None:
            return rfc3339(moment) if moment else None

        return {
            "sink": self.sink,
            "required": self.required,
            "delivered_seq": self.delivered_seq,
            "lag_events": self.lag_events,
            "lag_seconds": round(self.lag_seconds, 3),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "last_delivered_at": when(self.last_delivered_at),
            "next_attempt_at": when(self.next_attempt_at),
        }


def sink_status(
    cursor: SinkCursor,
    *,
    tail: LogTail,
    oldest_undelivered_at: datetime | None,
    now: datetime,
    required: bool = False,
) -> SinkStatus:
    lag = max(0, tail.seq - cursor.delivered_seq)
    age = (now - oldest_undelivered_at).total_seconds() if lag and oldest_undelivered_at else 0.0
    return SinkStatus(
        sink=cursor.sink,
        delivered_seq=cursor.delivered_seq,
        lag_events=lag,
        lag_seconds=max(0.0, age),
        attempts=cursor.attempts,
        last_error=cursor.last_error if cursor.attempts else None,
        last_delivered_at=cursor.last_delivered_at,
        next_attempt_at=cursor.next_attempt_at if lag else None,
        required=required,
    )


def delivery_status(
    cursors: CursorStore, sinks: Sequence[tuple[str, bool]], *, now: datetime
) -> list[SinkStatus]:
    """One row per ``(sink, required)`` in that order; a sink without a cursor yet counts from 0."""
    by_sink = {c.sink: c for c in cursors.cursors()}
    tail = cursors.tail()
    rows = []
    for name, required in sinks:
        cursor = by_sink.get(name) or SinkCursor(sink=name, delivered_seq=0)
        oldest = (
            cursors.oldest_undelivered_at(cursor.delivered_seq) if cursor.delivered_seq < tail.seq else None
        )
        rows.append(sink_status(cursor, tail=tail, oldest_undelivered_at=oldest, now=now, required=required))
    return rows
