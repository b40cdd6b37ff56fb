"""Background workers of the broker: the expiry sweeper and the reconciler, as daemon threads.

Each tick is one GrantService call; the loops only pace and survive errors, so the same ticks
can be driven directly by tests and benchmarks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kubejit.grants.service import GrantService

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, name: str, tick: Callable[[], object], *, interval: float) -> None:
        self.name = name
        self._tick = tick
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kubejit-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # a worker must outlive any single failure; the next tick retries
                log.exception("%s tick failed", self.name)
            self._stop.wait(self._interval)


def start_workers(service: GrantService, *, sweep_interval: float, reconcile_interval: float) -> list[Worker]:
    """The reconciler runs first, at start, to repair whatever a crash left behind."""
    workers = [
        Worker("reconciler", service.reconcile, interval=reconcile_interval),
        Worker("sweeper", service.expire_due, interval=sweep_interval),
        # Locks stop applying at their end time anyway; this records ``lock.expired``.
        Worker("lock-sweeper", service.lockouts.expire_locks, interval=sweep_interval),
    ]
    for worker in workers:
        worker.start()
    return workers
