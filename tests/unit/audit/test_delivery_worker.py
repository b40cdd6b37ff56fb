"""SinkDelivery and the fail-closed gate over an in-memory cursor store (a fake of kubejit's own port)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from kubejit.audit.delivery.gate import RequiredSinksGate
from kubejit.audit.delivery.ports import LogTail, SinkCursor
from kubejit.audit.delivery.status import sink_status
from kubejit.audit.delivery.worker import DeliveryOptions, SinkDelivery
from kubejit.audit.event import StoredEvent
from kubejit.clock import FixedClock
from kubejit.errors import AuditUnavailable, SinkUnavailable
from tests.unit.audit.test_delivery_format import AT, event
from tests.unit.grants.test_lifecycle import grant as make_grant

pytestmark = pytest.mark.unit


class MemoryCursors:
    """The CursorStore port in memory, with the same lease rules as the SQL one."""

    def __init__(self, events: list[StoredEvent]) -> None:
        self.events = events
        self.rows: dict[str, SinkCursor] = {}

    def ensure(self, sinks: Sequence[str]) -> None:
        for sink in sinks:
            self.rows.setdefault(sink, SinkCursor(sink=sink, delivered_seq=0))

    def cursors(self) -> list[SinkCursor]:
        return list(self.rows.values())

    def tail(self) -> LogTail:
        return LogTail(self.events[-1].seq, self.events[-1].at) if self.events else LogTail(0, None)

    def claim(self, sink: str, *, owner: str, now: datetime, lease_until: datetime) -> SinkCursor | None:
        row = self.rows[sink]
        free = row.lease_until is None or row.lease_until <= now or row.lease_owner == owner
        due = row.next_attempt_at is None or row.next_attempt_at <= now
        if not (free and due):
            return None
        self.rows[sink] = replace(row, lease_owner=owner, lease_until=lease_until, last_attempt_at=now)
        return self.rows[sink]

    def events_after(self, seq: int, *, limit: int) -> list[StoredEvent]:
        return [e for e in self.events if e.seq > seq][:limit]

    def release(self, owner: str) -> int:
        held = [name for name, row in self.rows.items() if row.lease_owner == owner]
        for name in held:
            self.rows[name] = replace(self.rows[name], lease_owner=None, lease_until=None)
        return len(held)

    def advance(self, sink: str, *, owner: str, from_seq: int, to_seq: int, now: datetime) -> bool:
        row = self.rows[sink]
        if row.lease_owner != owner or row.delivered_seq != from_seq:
            return False
        self.rows[sink] = replace(
            row, delivered_seq=to_seq, attempts=0, last_error=None, next_attempt_at=None,
            lease_owner=None, lease_until=None, last_delivered_at=now,
        )  # fmt: skip
        return True

    def fail(self, sink: str, *, owner: str, error: str, now: datetime, retry_at: datetime) -> bool:
        row = self.rows[sink]
        if row.lease_owner != owner:
            return False
        self.rows[sink] = replace(
            row, attempts=row.attempts + 1, last_error=error, next_attempt_at=retry_at,
            lease_owner=None, lease_until=None,
        )  # fmt: skip
        return True

    def oldest_undelivered_at(self, seq: int) -> datetime | None:
        return next((e.at for e in self.events if e.seq > seq), None)


class RecordingSink:
    def __init__(self, name: str = "siem") -> None:
        self.name = name
        self.up = True
        self.batches: list[list[int]] = []

    def deliver(self, events: Sequence[StoredEvent]) -> None:
        if not self.up:
            raise SinkUnavailable(f"audit sink {self.name}: connection refused")
        self.batches.append([e.seq for e in events])

    def close(self) -> None:
        pass


def setup(count: int, *, batch: int = 3) -> tuple[MemoryCursors, RecordingSink, SinkDelivery, FixedClock]:
    clock = FixedClock(AT + timedelta(minutes=1))
    cursors = MemoryCursors([event(n) for n in range(1, count + 1)])
    sink = RecordingSink()
    cursors.ensure([sink.name])
    options = DeliveryOptions(batch_size=batch, retry_initial_seconds=1, retry_max_seconds=8)
    delivery = SinkDelivery(
        sink, cursors=cursors, clock=clock, owner="r1", options=options, uniform=lambda a, b: b
    )
    return cursors, sink, delivery, clock


def test_delivers_everything_in_order_in_batches() -> None:
    cursors, sink, delivery, _ = setup(7)
    assert delivery.tick() == 7
    assert sink.batches == [[1, 2, 3], [4, 5, 6], [7]]
    assert cursors.rows["siem"].delivered_seq == 7 and cursors.rows["siem"].lease_owner is None
    assert delivery.tick() == 0  # caught up: nothing is claimed


def test_a_down_sink_keeps_its_cursor_backs_off_and_catches_up_without_loss() -> None:
    cursors, sink, delivery, clock = setup(4)
    sink.up = False
    assert delivery.tick() == 0
    row = cursors.rows["siem"]
    assert (row.delivered_seq, row.attempts) == (0, 1)
    assert row.last_error == "audit sink siem: connection refused"
    assert row.next_attempt_at == clock.now() + timedelta(seconds=1)
    assert delivery.tick() == 0  # not due yet: no attempt
    assert cursors.rows["siem"].attempts == 1
    clock.advance(timedelta(seconds=1))
    assert delivery.tick() == 0
    assert cursors.rows["siem"].next_attempt_at == clock.now() + timedelta(seconds=2)  # doubled
    sink.up = True
    cursors.events.append(event(5))
    clock.advance(timedelta(seconds=2))
    assert delivery.tick() == 5
    assert [s for b in sink.batches for s in b] == [1, 2, 3, 4, 5]
    assert cursors.rows["siem"].attempts == 0 and cursors.rows["siem"].last_error is None


def test_another_replicas_lease_blocks_until_it_expires() -> None:
    cursors, sink, delivery, clock = setup(2)
    now = clock.now()
    assert cursors.claim("siem", owner="r2", now=now, lease_until=now + timedelta(seconds=60))
    assert delivery.tick() == 0 and sink.batches == []
    clock.advance(timedelta(seconds=61))  # r2 died mid-batch: its lease runs out
    assert delivery.tick() == 2
    # r2 wakes up and tries to move the cursor it claimed at 0: refused, nothing moves back.
    assert not cursors.advance("siem", owner="r2", from_seq=0, to_seq=2, now=clock.now())
    assert cursors.rows["siem"].delivered_seq == 2


def test_a_stopping_delivery_finishes_its_batch_and_sends_no_other() -> None:
    cursors, sink, delivery, _ = setup(7)
    record = sink.deliver

    def stop_during(events: Sequence[StoredEvent]) -> None:
        delivery.stop()  # the broker shuts down while this batch is on its way
        record(events)

    sink.deliver = stop_during  # type: ignore[method-assign]
    assert delivery.tick() == 3
    assert sink.batches == [[1, 2, 3]]
    row = cursors.rows["siem"]
    assert row.delivered_seq == 3 and row.lease_owner is None  # acknowledged, and handed back


def test_an_unexpected_sink_error_is_recorded_and_retried() -> None:
    cursors, sink, delivery, _ = setup(1)

    def broken(events: Sequence[StoredEvent]) -> None:
        raise ValueError("bug")

    sink.deliver = broken  # type: ignore[method-assign]
    assert delivery.tick() == 0
    assert cursors.rows["siem"].last_error == "ValueError: bug"


def test_gate_passes_when_required_sinks_are_caught_up_and_refuses_otherwise() -> None:
    cursors, _, delivery, _ = setup(3)
    ticks = iter(range(1000))
    gate = RequiredSinksGate(
        cursors,
        ["siem"],
        wait_seconds=1,
        poll_seconds=0.25,
        monotonic=lambda: next(ticks) * 0.25,
        sleep=lambda s: None,
    )
    grant = make_grant()
    with pytest.raises(
        AuditUnavailable, match=r"siem have not acknowledged the audit log up to event #3"
    ) as info:
        gate(grant)
    assert grant.id in info.value.message and "kubejit audit status" in (info.value.hint or "")
    delivery.tick()
    gate(grant)  # caught up: no exception


def test_status_reports_lag_in_events_and_seconds() -> None:
    cursors, sink, delivery, clock = setup(5, batch=2)
    sink.up = False
    delivery.tick()
    cursor = cursors.rows["siem"]
    now = clock.now() + timedelta(seconds=30)
    status = sink_status(
        cursor, tail=cursors.tail(), oldest_undelivered_at=cursors.oldest_undelivered_at(0), now=now
    )
    assert (status.lag_events, status.attempts) == (5, 1)
    assert status.lag_seconds == (now - cursors.events[0].at).total_seconds()
    assert status.to_dict()["next_attempt_at"] is not None
    sink.up = True
    clock.advance(timedelta(seconds=5))
    delivery.tick()
    caught_up = sink_status(cursors.rows["siem"], tail=cursors.tail(), oldest_undelivered_at=None, now=now)
    assert (caught_up.lag_events, caught_up.lag_seconds, caught_up.last_error) == (0, 0.0, None)
