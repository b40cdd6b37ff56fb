"""Wire audit delivery into the broker: one worker thread per sink, and the fail-closed gate.

Each sink has its own thread so a slow or unreachable receiver (a TLS connect timing out) never
delays the others. Sinks are built, and their secrets read, before anything starts: a missing
secret file stops the broker at start instead of failing at the first event.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from kubejit.audit.delivery.gate import RequiredSinksGate
from kubejit.audit.delivery.ports import Sink
from kubejit.audit.delivery.sinks import build_sink
from kubejit.audit.delivery.status import SinkStatus, delivery_status
from kubejit.audit.delivery.worker import DeliveryOptions, SinkDelivery
from kubejit.clock import Clock
from kubejit.grants.model import Grant
from kubejit.server.workers import Worker
from kubejit.sink_settings import AuditDeliverySettings
from kubejit.store.audit_cursors import SqlCursorStore


def hand_over(
    deliveries: list[SinkDelivery], workers: list[Worker], cursors: SqlCursorStore | None, owner: str
) -> None:
    """Shutdown of a set of deliveries (audit sinks or notification channels): batches in flight
    finish, no other starts, then this replica's leases are given back at once, so another replica
    carries on now instead of when they would have run out."""
    for delivery in deliveries:
        delivery.stop()
    for worker in workers:
        worker.stop()
    if deliveries and cursors is not None:
        cursors.release(owner)


def replica_id() -> str:
    """Who holds a sink's lease: host and pid for people, a random part so a reused pid never matches."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class AuditDelivery:
    deliveries: list[SinkDelivery]
    interval: float
    cursors: SqlCursorStore
    #: This replica's name on the leases it takes (``replica_id``).
    owner: str
    required: frozenset[str] = frozenset()
    gate: Callable[[Grant], None] | None = None
    workers: list[Worker] = field(default_factory=list)

    @classmethod
    def build(
        cls, settings: AuditDeliverySettings, *, cursors: SqlCursorStore, clock: Clock
    ) -> AuditDelivery:
        sinks: list[Sink] = []
        try:
            for sink_settings in settings.sinks:
                sinks.append(build_sink(sink_settings))
        except BaseException:
            for sink in sinks:
                sink.close()
            raise
        cursors.ensure([s.name for s in sinks])
        owner = replica_id()
        deliveries = [
            SinkDelivery(
                sink,
                cursors=cursors,
                clock=clock,
                owner=owner,
                options=DeliveryOptions(
                    batch_size=spec.batch_size,
                    retry_initial_seconds=settings.retry.initial_seconds,
                    retry_max_seconds=settings.retry.max_seconds,
                    lease_seconds=max(60.0, 3 * spec.timeout_seconds),
                ),
            )
            for sink, spec in zip(sinks, settings.sinks, strict=True)
        ]
        gate = None
        if settings.fail_closed:
            gate = RequiredSinksGate(
                cursors, settings.required_sinks, wait_seconds=settings.required_wait_seconds
            )
        return cls(
            deliveries,
            settings.delivery_interval_seconds,
            cursors,
            owner,
            required=frozenset(settings.required_sinks),
            gate=gate,
        )

    def status(self) -> list[SinkStatus]:
        """Each sink's lag, for /metrics (the same figures as `kubejit audit status`)."""
        sinks = [(d.sink.name, d.sink.name in self.required) for d in self.deliveries]
        return delivery_status(self.cursors, sinks, now=self.cursors.clock.now())

    def start(self) -> list[Worker]:
        for delivery in self.deliveries:
            worker = Worker(f"audit-sink-{delivery.sink.name}", delivery.tick, interval=self.interval)
            worker.start()
            self.workers.append(worker)
        return self.workers

    def stop(self) -> None:
        hand_over(self.deliveries, self.workers, self.cursors, self.owner)

    def close(self) -> None:
        self.stop()
        for delivery in self.deliveries:
            delivery.sink.close()
