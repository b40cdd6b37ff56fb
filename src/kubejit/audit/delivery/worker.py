"""One sink's delivery loop body: claim the cursor, send the next batch, move the cursor.

``SinkDelivery.tick`` is what the sink's worker thread runs; tests drive it directly. The cursor
moves only after the sink acknowledged the batch, so a failure (or a crash) means the same batch
is sent again later: at least once, in order. Failures are spaced by ``retry_delay`` and recorded
on the cursor (attempts, last error, next attempt), which is what `kubejit audit status` shows.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from kubejit.audit.delivery.backoff import retry_delay
from kubejit.audit.delivery.ports import CursorStore, Sink, SinkCursor
from kubejit.clock import Clock
from kubejit.errors import KubejitError

log = logging.getLogger(__name__)

#: A longest error text kept on the cursor: enough to act on, never a whole response body.
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class DeliveryOptions:
    batch_size: int = 200
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    #: A replica that dies mid-batch holds the sink up at most this long; must exceed a send's timeout.
    lease_seconds: float = 60.0
    #: Batches sent per tick before other work gets a turn (catching up after an outage is fast).
    max_batches_per_tick: int = 50


class SinkDelivery:
    def __init__(
        self,
        sink: Sink,
        *,
        cursors: CursorStore,
        clock: Clock,
        owner: str,
        options: DeliveryOptions | None = None,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.sink = sink
        self.cursors = cursors
        self.clock = clock
        self.owner = owner
        self.options = options or DeliveryOptions()
        self._uniform = uniform
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Finish the batch in flight, send no other: a broker shutting down hands the sink over."""
        self._stopping.set()

    def tick(self) -> int:
        """Deliver what is due; returns how many events the sink acknowledged in this tick."""
        delivered = 0
        for _ in range(self.options.max_batches_per_tick):
            if self._stopping.is_set():
                break
            sent = self._one_batch()
            if not sent:
                break
            delivered += sent
        return delivered

    def _due(self) -> bool:
        """Cheap read-only check first, so an idle sink costs no write transaction."""
        cursor = next((c for c in self.cursors.cursors() if c.sink == self.sink.name), None)
        if cursor is None or cursor.delivered_seq >= self.cursors.tail().seq:
            return False
        return cursor.next_attempt_at is None or cursor.next_attempt_at <= self.clock.now()

    def _one_batch(self) -> int:
        if not self._due():
            return 0
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.options.lease_seconds)
        cursor = self.cursors.claim(self.sink.name, owner=self.owner, now=now, lease_until=lease_until)
        if cursor is None:  # another replica holds it, or it is not due after all
            return 0
        events = self.cursors.events_after(cursor.delivered_seq, limit=self.options.batch_size)
        start = cursor.delivered_seq
        try:
            if events:
                self.sink.deliver(events)
        except Exception as exc:  # every failure is retried; the worker must outlive it
            self._record_failure(cursor, exc)
            return 0
        end = events[-1].seq if events else start
        if not self.cursors.advance(
            self.sink.name, owner=self.owner, from_seq=start, to_seq=end, now=self.clock.now()
        ):
            log.warning(
                "audit sink %s: lease lost while delivering %d..%d; the batch may be sent again",
                self.sink.name,
                start + 1,
                end,
            )
            return 0
        return len(events)

    def _record_failure(self, cursor: SinkCursor, exc: Exception) -> None:
        text = exc.message if isinstance(exc, KubejitError) else f"{type(exc).__name__}: {exc}"
        text = text[:MAX_ERROR_CHARS]
        delay = retry_delay(
            cursor.attempts + 1,
            initial=self.options.retry_initial_seconds,
            maximum=self.options.retry_max_seconds,
            uniform=self._uniform,
        )
        now = self.clock.now()
        self.cursors.fail(
            self.sink.name, owner=self.owner, error=text, now=now, retry_at=now + timedelta(seconds=delay)
        )
        log.warning(
            "audit sink %s: delivery after #%d failed (attempt %d): %s; retrying in %.1fs",
            self.sink.name, cursor.delivered_seq, cursor.attempts + 1, text, delay,
        )  # fmt: skip
