"""Failed authentications, audited as one event per source and interval instead of one per request.

Anyone can send a bad bearer token, and each ``auth.failed`` is a chained write under the database's
writer lock. So the first failure from a source in an interval is written at once (with its reason,
path and claimed issuer, as before); later ones from that source within the interval are counted in
memory and written as ONE ``auth.failed`` event with ``count``, ``first_at``, ``last_at`` and the
reasons seen, when the interval closes (a worker tick, or the next failure after it) or the broker
stops (``flush``). With an interval of 0 every failure is written on its own.

Per process: each replica summarises the failures it saw. At most ``max_sources`` sources are
tracked; the oldest one's summary is written early when more arrive.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from kubejit.clock import Clock
from kubejit.grants.ports import AuditEvent

#: Distinct reasons kept per summary (the rest are counted under "other").
MAX_REASONS = 10


@dataclass
class _Window:
    opened: datetime
    count: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    reasons: Counter[str] = field(default_factory=Counter)
    last: AuditEvent | None = None

    def add(self, event: AuditEvent) -> None:
        self.count += 1
        self.first_at = self.first_at or event.at
        self.last_at = event.at
        reason = str(event.details.get("error", ""))
        if reason in self.reasons or len(self.reasons) < MAX_REASONS:
            self.reasons[reason] += 1
        else:
            self.reasons["other"] += 1
        self.last = event


class AuthFailureSummary:
    def __init__(
        self,
        record: Callable[[Sequence[AuditEvent]], None],
        *,
        clock: Clock,
        interval_seconds: float,
        max_sources: int = 10_000,
    ) -> None:
        self._record = record
        self._clock = clock
        self._interval = timedelta(seconds=interval_seconds)
        self._max_sources = max_sources
        #: Ordered by when each window opened, so the due ones are at the front.
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._lock = threading.Lock()

    def failed(self, source: str | None, event: AuditEvent) -> None:
        """One failed authentication from ``source``: written now, or counted for the summary."""
        key = source or "unknown"
        with self._lock:
            due = self._close_due(event.at)
            window = self._windows.get(key)
            if window is not None:
                window.add(event)
            else:
                self._windows[key] = _Window(opened=event.at)
                due.append(event)
                while len(self._windows) > self._max_sources:
                    due.extend(_summary(self._windows.popitem(last=False)[1], self._clock.now()))
        self._write(due)

    def flush_due(self) -> None:
        """Write the summaries of intervals that have closed (the worker's tick)."""
        with self._lock:
            due = self._close_due(self._clock.now())
        self._write(due)

    def flush(self) -> None:
        """Write every pending summary now (at shutdown: nothing counted is lost)."""
        with self._lock:
            windows, self._windows = list(self._windows.values()), OrderedDict()
        now = self._clock.now()
        self._write([e for w in windows for e in _summary(w, now)])

    def _close_due(self, now: datetime) -> list[AuditEvent]:
        due: list[AuditEvent] = []
        while self._windows:
            window = next(iter(self._windows.values()))
            if now - window.opened < self._interval:
                break
            self._windows.popitem(last=False)
            due.extend(_summary(window, now))
        return due

    def _write(self, events: list[AuditEvent]) -> None:
        if events:
            self._record(events)


def _summary(window: _Window, now: datetime) -> list[AuditEvent]:
    """The one event standing for the failures after the first (none when there were none)."""
    if window.count == 0 or window.last is None:
        return []
    last = window.last
    details = {
        **last.details,
        "error": window.reasons.most_common(1)[0][0],
        "count": window.count,
        "first_at": window.first_at,
        "last_at": window.last_at,
        "reasons": dict(window.reasons.most_common()),
    }
    return [replace(last, at=now, details=details)]
