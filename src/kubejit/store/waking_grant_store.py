"""The grant store, telling listeners once a grant write and its events have committed.

The broker uses it to wake its notification workers (server/notifications.py): a notice goes out
at once instead of at the next poll. Telling is setting a flag, so no grant operation waits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.engine import Engine

from kubejit.clock import Clock
from kubejit.grants.model import Grant
from kubejit.grants.ports import AuditEvent
from kubejit.store.grant_store import SqlGrantStore


class WakingGrantStore(SqlGrantStore):
    """Every notifying event but ``grant.expiring_soon`` is written with its grant."""

    def __init__(self, engine: Engine, *, clock: Clock, wake: Callable[[], None]) -> None:
        super().__init__(engine, clock=clock)
        self._wake = wake

    def add(self, grant: Grant, events: Sequence[AuditEvent]) -> Grant:
        stored = super().add(grant, events)
        self._wake()
        return stored

    def save(self, grant: Grant, events: Sequence[AuditEvent]) -> Grant:
        stored = super().save(grant, events)
        self._wake()
        return stored
