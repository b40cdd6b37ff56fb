"""The lock check on every request: cheap by a small per-process cache, exact where it matters.

``check`` runs in the authentication dependency of every route. It asks the store for the locks on
one principal (one indexed query on ``(kind, target)``) and keeps the answer for at most
``CACHE_SECONDS`` per (name, groups). A lock created or removed by this process clears the cache at
once; one created on another replica is seen here within ``CACHE_SECONDS``. That window cannot
leave access behind: creating a lock ends what it matches *after* the lock is committed, and every
new grant is checked again, uncached (``fresh``), *after* it is committed, so whichever write comes
second sees the other (see ``GrantService.request``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

from kubejit.clock import Clock
from kubejit.errors import Locked
from kubejit.grants import locks
from kubejit.grants.locks import Lock
from kubejit.grants.ports import LockStore
from kubejit.identity.principal import Principal

#: How stale this process's view of another replica's locks may be.
CACHE_SECONDS = 1.0
#: Principals remembered at once; past it the cache starts over (it is only a cache).
CACHE_ENTRIES = 10_000

_Key = tuple[str, frozenset[str]]


class LockGuard:
    def __init__(self, store: LockStore, *, clock: Clock, admin_groups: frozenset[str]) -> None:
        self.store = store
        self.clock = clock
        self.admin_groups = admin_groups
        self._cache: dict[_Key, tuple[datetime, tuple[Lock, ...]]] = {}
        self._mutex = threading.Lock()

    def check(self, principal: Principal) -> None:
        """Raise ``Locked`` if a lock in force matches this principal (cached up to a second)."""
        now = self.clock.now()
        key = (principal.name, principal.groups)
        with self._mutex:
            cached = self._cache.get(key)
        if cached is None or not (now - timedelta(seconds=CACHE_SECONDS) < cached[0] <= now):
            found = tuple(self._query(principal, now))
            with self._mutex:
                if len(self._cache) >= CACHE_ENTRIES:
                    self._cache.clear()
                self._cache[key] = (now, found)
            cached = (now, found)
        self._raise_if_matched(cached[1], principal, now)

    def fresh(self, principal: Principal) -> Lock | None:
        """The lock in force on this principal (by name or group), read from the store now."""
        now = self.clock.now()
        return locks.first_match(self._query(principal, now), principal, now=now)

    def on_grant(self, grant_id: str, requester: str) -> Lock | None:
        """A lock in force on this grant or on its requester by name, read from the store now.

        For the grant's own operations (activation, token mint), where the requester's groups are
        not at hand: group locks are enforced at authentication and when a grant is requested.
        """
        now = self.clock.now()
        found = self.store.active_locks(now, users=(requester,), grants=(grant_id,))
        active = sorted((lock for lock in found if lock.active(now)), key=lambda lock: lock.created_at)
        return active[0] if active else None

    def refusal(self, lock: Lock, who: str) -> Locked:
        return locks.refusal(lock, who, admin_groups=self.admin_groups)

    def invalidate(self) -> None:
        with self._mutex:
            self._cache.clear()

    def _query(self, principal: Principal, now: datetime, *, grants: Sequence[str] = ()) -> list[Lock]:
        return self.store.active_locks(
            now, users=(principal.name,), groups=sorted(principal.groups), grants=grants
        )

    def _raise_if_matched(self, found: Sequence[Lock], principal: Principal, now: datetime) -> None:
        lock = locks.first_match(found, principal, now=now)
        if lock is not None:
            raise locks.refusal(lock, principal.name, admin_groups=self.admin_groups)
