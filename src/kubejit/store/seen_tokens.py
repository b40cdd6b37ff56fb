"""Job token ids already exchanged, so each CI/CD token buys at most one grant (replay refused).

The key is sha256(issuer + NUL + jti): the table says nothing about which pipelines ran, and two
issuers' ids never collide. A row is kept until the token itself expires (plus the verifier's
leeway); after that the token is refused as expired anyway, so rows are purged on every use.
The insert runs under the store's writer lock, so two replicas racing on one token cannot both win.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from kubejit.grants.ports import AuditEvent
from kubejit.store import audit_log
from kubejit.store.tables import seen_token_ids
from kubejit.store.transactions import write_transaction


def token_key(issuer: str, jti: str) -> str:
    return hashlib.sha256(f"{issuer}\x00{jti}".encode()).hexdigest()


class SqlSeenTokenIds:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def first_use(
        self, *, issuer: str, jti: str, keep_until: datetime, now: datetime, events: Sequence[AuditEvent] = ()
    ) -> bool:
        """Record this token id as used (with ``events``, in one transaction); False if it was used before.

        On a replay nothing is written: the caller records the refusal itself.
        """
        key = token_key(issuer, jti)
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(sa.delete(seen_token_ids).where(seen_token_ids.c.expires_at <= now))
                found = conn.execute(sa.select(seen_token_ids.c.key).where(seen_token_ids.c.key == key))
                if found.first() is not None:
                    return False
                conn.execute(sa.insert(seen_token_ids).values(key=key, expires_at=keep_until))
                audit_log.append(conn, events)
        except IntegrityError:  # only without the writer lock (never here), but a replay all the same
            return False
        return True

    def purge(self, now: datetime) -> int:
        """Forget ids of tokens that have expired; returns how many."""
        with write_transaction(self.engine) as conn:
            result = conn.execute(sa.delete(seen_token_ids).where(seen_token_ids.c.expires_at <= now))
        return int(result.rowcount or 0)
