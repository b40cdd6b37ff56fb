"""Record ``grant.expiring_soon`` once per grant end, whichever replica's sweeper gets there first.

The row in ``grant_expiry_warnings`` (keyed by grant and end) and the audit event commit in one write
transaction; a second sweep, a restart or another replica finds the row and records nothing.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from kubejit.clock import Clock
from kubejit.grants.expiry_warnings import due_warning, expiring_soon_event
from kubejit.grants.model import GrantState
from kubejit.store import audit_log
from kubejit.store.grant_rows import row_to_grant
from kubejit.store.tables import grant_expiry_warnings, grants
from kubejit.store.transactions import read_transaction, write_transaction

_W = grant_expiry_warnings.c


class SqlExpiryWarnings:
    def __init__(self, engine: Engine, *, clock: Clock, window: timedelta, limit: int = 200) -> None:
        self.engine = engine
        self.clock = clock
        self.window = window
        self.limit = limit

    def warn_due(self) -> int:
        """Record the warning for every active grant ending within the window; how many were new."""
        now = self.clock.now()
        warned = sa.exists().where(_W.grant_id == grants.c.id, _W.expires_at == grants.c.expires_at)
        query = (
            sa.select(grants)
            .where(
                grants.c.state == GrantState.ACTIVE.value,
                grants.c.expires_at > now,
                grants.c.expires_at <= now + self.window,
                ~warned,
            )
            .order_by(grants.c.expires_at)
            .limit(self.limit)
        )
        with read_transaction(self.engine) as conn:
            due = [row_to_grant(r._mapping) for r in conn.execute(query)]
        recorded = 0
        for grant in due:
            if not due_warning(grant, now=now, window_seconds=self.window.total_seconds()):
                continue
            try:
                with write_transaction(self.engine) as conn:
                    conn.execute(
                        sa.insert(grant_expiry_warnings).values(
                            grant_id=grant.id, expires_at=grant.expires_at, warned_at=now
                        )
                    )
                    audit_log.append(conn, [expiring_soon_event(grant, now=now)])
            except IntegrityError:  # another replica warned first: its row and event stand
                continue
            recorded += 1
        return recorded
