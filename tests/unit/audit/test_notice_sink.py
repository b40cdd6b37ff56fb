from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kubejit.audit.delivery.sinks.notice import NoticeSink
from kubejit.audit.event import StoredEvent
from kubejit.errors import SinkUnavailable
from kubejit.ids import GrantId
from kubejit.notify.message import Notice

AT = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _event(seq: int, action: str, **details: Any) -> StoredEvent:
    return StoredEvent(
        seq=seq,
        event_id=f"e-{seq}",
        action=action,
        actor="alice",
        at=AT,
        outcome="success",
        grant_id=GrantId("g-1"),
        subject="alice",
        cluster="prod",
        details={
            "namespaces": ["payments"],
            "role": "edit",
            "reason": "fix",
            "decision": "approval",
            **details,
        },
    )


class Recorder:
    def __init__(self, fail_on: set[str] | None = None) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail_on = fail_on or set()

    def __call__(self, notice: Notice, event: StoredEvent) -> None:
        if event.event_id in self.fail_on:
            raise OSError("connection refused")
        self.sent.append((event.event_id, notice.kind))


BATCH = [
    _event(1, "policy.decided"),
    _event(2, "grant.requested"),
    _event(3, "grant.approved"),
    _event(4, "grant.revoked"),
]


def test_only_notifying_events_are_sent_in_order() -> None:
    rec = Recorder()
    NoticeSink("chat", send=rec, public_url="https://jit.example").deliver(BATCH)
    assert rec.sent == [("e-2", "needs_approval"), ("e-3", "approved")]


def test_events_filter_limits_the_kinds() -> None:
    rec = Recorder()
    NoticeSink("chat", send=rec, public_url="https://jit.example", kinds={"approved"}).deliver(BATCH)
    assert rec.sent == [("e-3", "approved")]


def test_failed_send_retries_without_repeating_the_sent_ones() -> None:
    rec = Recorder(fail_on={"e-3"})
    sink = NoticeSink("chat", send=rec, public_url="https://jit.example")
    with pytest.raises(SinkUnavailable, match="notification channel chat: OSError"):
        sink.deliver(BATCH)
    rec.fail_on.clear()
    sink.deliver(BATCH)
    assert rec.sent == [("e-2", "needs_approval"), ("e-3", "approved")]
