"""Whether each cluster answered the reconciler's last look, logged once per change, not per tick.

An outage lasts many reconciler ticks; a traceback on each buries everything else in the log. So the
first failed tick of an outage logs one WARNING line, the first good tick after it one INFO line,
and ``snapshot()`` feeds the ``kubejit_cluster_reachable`` gauge on /metrics.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class ClusterReachability:
    def __init__(self) -> None:
        self._reachable: dict[str, bool] = {}
        self._lock = threading.Lock()

    def reached(self, cluster: str) -> None:
        if self._set(cluster, reachable=True) is False:
            log.info("cluster %s is reachable again", cluster)

    def unreachable(self, cluster: str, why: str) -> None:
        if self._set(cluster, reachable=False) is not False:
            log.warning("cluster %s is unreachable, reconciling it waits until it answers: %s", cluster, why)

    def snapshot(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._reachable)

    def _set(self, cluster: str, *, reachable: bool) -> bool | None:
        """The state before (None: never looked at)."""
        with self._lock:
            before = self._reachable.get(cluster)
            self._reachable[cluster] = reachable
            return before
