"""Fail-closed audit: a grant is activated only once its record is durable, off the broker too.

"Durable" has two parts. The store part always holds: every grant change and its audit event
commit in one transaction, so no grant is active in the store without its record. With
``audit.failClosed``, each sink marked ``required`` must also have acknowledged every event up to
the activation (the request and the approvals of this grant included) before any Kubernetes object
is created: an attacker who later wipes the broker's database cannot erase the trail, and a SIEM
outage stops new access instead of leaving it unrecorded. The grant then stays approved; the
reconciler activates it once the sinks have caught up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from kubejit.audit.delivery.ports import CursorStore
from kubejit.errors import AuditUnavailable
from kubejit.grants.model import Grant


class RequiredSinksGate:
    """Called before a grant's objects are created; raises ``AuditUnavailable`` to refuse."""

    def __init__(
        self,
        cursors: CursorStore,
        required: Sequence[str],
        *,
        wait_seconds: float,
        poll_seconds: float = 0.05,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cursors = cursors
        self.required = frozenset(required)
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds
        self._monotonic = monotonic
        self._sleep = sleep

    def behind(self, seq: int) -> list[str]:
        """Required sinks that have not acknowledged every event up to ``seq``."""
        delivered = {c.sink: c.delivered_seq for c in self.cursors.cursors()}
        return sorted(s for s in self.required if delivered.get(s, 0) < seq)

    def __call__(self, grant: Grant) -> None:
        target = self.cursors.tail().seq
        deadline = self._monotonic() + self.wait_seconds
        while lagging := self.behind(target):
            if self._monotonic() >= deadline:
                raise AuditUnavailable(
                    f"grant {grant.id} was not activated: audit sink(s) {', '.join(lagging)} have not "
                    f"acknowledged the audit log up to event #{target} (audit.failClosed is on)"
                )
            self._sleep(self.poll_seconds)
