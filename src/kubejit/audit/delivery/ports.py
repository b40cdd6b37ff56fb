"""What delivery needs from the store and from a sink, as protocols (store/ implements the cursors).

A cursor is claimed with a lease before a batch is sent and moved only by the lease holder, so two
broker replicas never send the same batch at the same time, and a replica that died mid-batch
holds the sink up only until its lease runs out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from kubejit.audit.event import StoredEvent


@dataclass(frozen=True)
class SinkCursor:
    """How far one sink has got, and how its last attempts went."""

    sink: str
    delivered_seq: int
    #: Consecutive failed attempts since the last success.
    attempts: int = 0
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    last_delivered_at: datetime | None = None
    next_attempt_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True)
class LogTail:
    """The newest event of the audit log (seq 0 when it is empty)."""

    seq: int
    at: datetime | None


class CursorStore(Protocol):
    def ensure(self, sinks: Sequence[str]) -> None:
        """Create a cursor at 0 for each sink that has none (a new sink receives the whole log)."""
        ...

    def cursors(self) -> list[SinkCursor]: ...

    def tail(self) -> LogTail: ...

    def claim(self, sink: str, *, owner: str, now: datetime, lease_until: datetime) -> SinkCursor | None:
        """Take the sink's lease if it is free (or ours) and the sink is due; None otherwise."""
        ...

    def events_after(self, seq: int, *, limit: int) -> list[StoredEvent]: ...

    def advance(self, sink: str, *, owner: str, from_seq: int, to_seq: int, now: datetime) -> bool:
        """Move the cursor and release the lease, only if we still hold it at ``from_seq``."""
        ...

    def fail(self, sink: str, *, owner: str, error: str, now: datetime, retry_at: datetime) -> bool:
        """Count a failed attempt, keep its error, set the next attempt, release the lease."""
        ...

    def release(self, owner: str) -> int:
        """Give back every lease ``owner`` holds (a replica shutting down); how many it held."""
        ...

    def oldest_undelivered_at(self, seq: int) -> datetime | None:
        """The time of the first event after ``seq`` (how old the sink's backlog is)."""
        ...


class Sink(Protocol):
    """One destination. ``deliver`` returns only once the receiver has acknowledged the whole batch."""

    name: str

    def deliver(self, events: Sequence[StoredEvent]) -> None:
        """Send ``events`` in order; raise ``SinkUnavailable`` when that is not certain."""
        ...

    def close(self) -> None: ...
