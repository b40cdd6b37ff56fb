"""People seen by the broker (Kubernetes has no user database): who, from which issuer, when.

Every authenticated call reports its principal; the row is written at most once per
``min_interval`` per person (or at once when their groups changed), so accounting costs one small
write a minute per active person, not one per request.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from kubejit.clock import Clock
from kubejit.grants.model import GrantState
from kubejit.identity.principal import Principal
from kubejit.store.tables import grants, users
from kubejit.store.transactions import read_transaction, write_transaction


@dataclass(frozen=True)
class PersonSeen:
    username: str
    issuer: str
    groups: tuple[str, ...]
    first_seen: datetime
    last_login: datetime
    #: Ids of the grants this person holds right now (state active).
    active_grants: tuple[str, ...] = ()
    #: The email their IdP verified at their last login (the ``email`` claim), for notifications.
    email: str | None = None


class SqlUserDirectory:
    def __init__(
        self, engine: Engine, *, clock: Clock, min_interval: timedelta = timedelta(minutes=1)
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.min_interval = min_interval
        self._lock = threading.Lock()
        #: username -> (groups, email, when last written); only this process's view, all it needs.
        self._written: dict[str, tuple[frozenset[str], str | None, datetime]] = {}

    def seen(self, who: Principal) -> bool:
        """Record that ``who`` used the broker now; returns whether a row was written."""
        now = self.clock.now()
        with self._lock:
            last = self._written.get(who.name)
            if (
                last is not None
                and last[:2] == (who.groups, who.person)
                and now - last[2] < self.min_interval
            ):
                return False
        values = {"issuer": who.issuer, "groups": sorted(who.groups), "last_login": now, "email": who.person}
        with write_transaction(self.engine) as conn:
            updated = conn.execute(sa.update(users).where(users.c.username == who.name).values(**values))
            if updated.rowcount == 0:
                try:
                    with conn.begin_nested():
                        conn.execute(sa.insert(users).values(username=who.name, first_seen=now, **values))
                except IntegrityError:  # another replica inserted first
                    conn.execute(sa.update(users).where(users.c.username == who.name).values(**values))
        with self._lock:  # only once written: a failed write is retried on the next request
            self._written[who.name] = (who.groups, who.person, now)
        return True

    def email(self, username: str) -> str | None:
        """The verified email recorded at ``username``'s last login, if any."""
        with read_transaction(self.engine) as conn:
            found: str | None = conn.execute(
                sa.select(users.c.email).where(users.c.username == username)
            ).scalar()
        return found

    def list(self) -> Sequence[PersonSeen]:
        """Everyone seen, most recent first, with the grants each holds now."""
        with read_transaction(self.engine) as conn:
            rows = conn.execute(sa.select(users).order_by(users.c.last_login.desc(), users.c.username)).all()
            active: dict[str, list[str]] = {}
            for requester, grant_id in conn.execute(
                sa.select(grants.c.requester, grants.c.id)
                .where(grants.c.state == GrantState.ACTIVE.value)
                .order_by(grants.c.created_at)
            ):
                active.setdefault(requester, []).append(grant_id)
        return [
            PersonSeen(
                username=r.username,
                issuer=r.issuer,
                groups=tuple(r.groups),
                first_seen=r.first_seen,
                last_login=r.last_login,
                active_grants=tuple(active.get(r.username, ())),
                email=r.email,
            )
            for r in rows
        ]
