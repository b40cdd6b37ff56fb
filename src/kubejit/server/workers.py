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
        #: Set by ``wake`` (new work is there): the next tick runs now instead of after ``interval``.
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kubejit-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def wake(self) -> None:
        """Run the next tick now (never blocks: the caller may be in a request)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the tick: a wake during it runs another one at once
            try:
                self._tick()
            except Exception:  # a worker must outlive any single failure; the next tick retries
                log.exception("%s tick failed", self.name)
            self._wake.wait(self._interval)


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
