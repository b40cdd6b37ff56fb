"""auth.failed summarised per source and interval: the first written at once, the rest as one count."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from kubejit.clock import FixedClock
from kubejit.grants.ports import AuditEvent
from kubejit.server.auth_failures import MAX_REASONS, AuthFailureSummary

pytestmark = pytest.mark.unit


class Recorder:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def __call__(self, events: Sequence[AuditEvent]) -> None:
        self.events.extend(events)


def failure(clock: FixedClock, source: str, error: str = "token expired") -> AuditEvent:
    return AuditEvent(
        action="auth.failed",
        actor="anonymous",
        at=clock.now(),
        outcome="failure",
        details={"error": error, "source_ip": source, "path": "/v1/grants"},
    )


@pytest.fixture
def world() -> tuple[AuthFailureSummary, Recorder, FixedClock]:
    clock, recorder = FixedClock(), Recorder()
    return AuthFailureSummary(recorder, clock=clock, interval_seconds=60), recorder, clock


def test_the_first_failure_is_written_at_once_and_the_rest_become_one_counted_event(world) -> None:  # type: ignore[no-untyped-def]
    summary, recorder, clock = world
    start = clock.now()
    summary.failed("10.0.0.1", failure(clock, "10.0.0.1"))
    assert [e.details.get("count") for e in recorder.events] == [None]
    for second in range(1, 1000):
        clock.advance(timedelta(milliseconds=50))
        summary.failed("10.0.0.1", failure(clock, "10.0.0.1", "bad signature" if second % 2 else "expired"))
    assert len(recorder.events) == 1  # 999 more in the interval: nothing written yet
    clock.advance(timedelta(seconds=11))
    summary.flush_due()
    assert len(recorder.events) == 2
    counted = recorder.events[1]
    assert counted.action == "auth.failed" and counted.outcome == "failure"
    assert counted.details["count"] == 999 and counted.details["source_ip"] == "10.0.0.1"
    assert counted.details["first_at"] == start + timedelta(milliseconds=50)
    assert counted.details["last_at"] == start + timedelta(milliseconds=50 * 999)
    assert counted.details["reasons"] == {"bad signature": 500, "expired": 499}
    assert counted.details["error"] == "bad signature" and counted.at == clock.now()


def test_a_failure_after_the_interval_closes_it_and_is_written_at_once(world) -> None:  # type: ignore[no-untyped-def]
    summary, recorder, clock = world
    for _ in range(3):
        summary.failed("10.0.0.1", failure(clock, "10.0.0.1"))
    clock.advance(timedelta(seconds=60))
    summary.failed("10.0.0.1", failure(clock, "10.0.0.1", "new reason"))
    assert [e.details.get("count") for e in recorder.events] == [None, 2, None]
    assert recorder.events[2].details["error"] == "new reason"


def test_sources_are_summarised_apart_and_a_lone_failure_writes_no_summary(world) -> None:  # type: ignore[no-untyped-def]
    summary, recorder, clock = world
    summary.failed("10.0.0.1", failure(clock, "10.0.0.1"))
    summary.failed("10.0.0.2", failure(clock, "10.0.0.2"))
    summary.failed("10.0.0.2", failure(clock, "10.0.0.2"))
    clock.advance(timedelta(minutes=2))
    summary.flush_due()
    assert [(e.details["source_ip"], e.details.get("count")) for e in recorder.events] == [
        ("10.0.0.1", None),
        ("10.0.0.2", None),
        ("10.0.0.2", 1),
    ]


def test_flush_at_shutdown_loses_nothing(world) -> None:  # type: ignore[no-untyped-def]
    summary, recorder, clock = world
    for source in ("10.0.0.1", "10.0.0.2"):
        for _ in range(5):
            summary.failed(source, failure(clock, source))
    summary.flush()
    assert sum(e.details.get("count", 1) for e in recorder.events) == 10
    summary.flush()
    assert len(recorder.events) == 4


def test_memory_is_bounded_the_oldest_source_summarised_early() -> None:
    clock, recorder = FixedClock(), Recorder()
    summary = AuthFailureSummary(recorder, clock=clock, interval_seconds=60, max_sources=2)
    for source in ("a", "a", "b", "c"):
        summary.failed(source, failure(clock, source))
    assert [(e.details["source_ip"], e.details.get("count")) for e in recorder.events] == [
        ("a", None),
        ("b", None),
        ("c", None),
        ("a", 1),
    ]


def test_reasons_are_bounded(world) -> None:  # type: ignore[no-untyped-def]
    summary, recorder, clock = world
    for n in range(30):
        summary.failed("x", failure(clock, "x", f"reason {n}"))
    summary.flush()
    reasons = recorder.events[-1].details["reasons"]
    assert len(reasons) == MAX_REASONS + 1 and reasons["other"] == 29 - MAX_REASONS


def test_an_interval_of_zero_writes_every_failure() -> None:
    clock, recorder = FixedClock(), Recorder()
    summary = AuthFailureSummary(recorder, clock=clock, interval_seconds=0)
    for _ in range(5):
        summary.failed("x", failure(clock, "x"))
    summary.flush()
    assert [e.details.get("count") for e in recorder.events] == [None] * 5
