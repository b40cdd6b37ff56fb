"""SqlWebSessionStore: the web pages' sessions in the broker's database, so every replica shares them.

Rows hold the SHA-256 of each session id, never the id. Sessions are not audit events: they are
written without the audit chain's writer lock being needed for correctness, but through the same
write transaction helper so SQLite's single writer and PostgreSQL's advisory lock stay consistent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kubejit.identity.principal import Principal
from kubejit.store.tables import web_sessions, web_sign_ins
from kubejit.store.transactions import read_transaction, write_transaction
from kubejit.web.sessions import SIGN_IN_TTL, SignInAttempt, WebSession


class SqlWebSessionStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_session(self, session: WebSession) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(
                sa.insert(web_sessions).values(
                    id_hash=session.id_hash,
                    principal=_principal_row(session.principal),
                    created_at=session.created_at,
                    last_seen_at=session.last_seen_at,
                    expires_at=session.expires_at,
                )
            )

    def get_session(self, id_hash: str) -> WebSession | None:
        with read_transaction(self.engine) as conn:
            row = conn.execute(sa.select(web_sessions).where(web_sessions.c.id_hash == id_hash)).first()
        if row is None:
            return None
        m = row._mapping
        return WebSession(
            id_hash=m["id_hash"],
            principal=_principal(m["principal"]),
            created_at=m["created_at"],
            last_seen_at=m["last_seen_at"],
            expires_at=m["expires_at"],
        )

    def touch_session(self, id_hash: str, at: datetime) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(
                sa.update(web_sessions).where(web_sessions.c.id_hash == id_hash).values(last_seen_at=at)
            )

    def delete_session(self, id_hash: str) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(sa.delete(web_sessions).where(web_sessions.c.id_hash == id_hash))

    def add_sign_in(self, attempt: SignInAttempt) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(
                sa.insert(web_sign_ins).values(
                    id_hash=attempt.id_hash,
                    state=attempt.state,
                    nonce=attempt.nonce,
                    code_verifier=attempt.code_verifier,
                    return_to=attempt.return_to,
                    created_at=attempt.created_at,
                )
            )

    def take_sign_in(self, id_hash: str) -> SignInAttempt | None:
        """Read and delete in one transaction: of two callbacks racing, only one gets the attempt."""
        with write_transaction(self.engine) as conn:
            row = conn.execute(sa.select(web_sign_ins).where(web_sign_ins.c.id_hash == id_hash)).first()
            if row is None:
                return None
            if conn.execute(sa.delete(web_sign_ins).where(web_sign_ins.c.id_hash == id_hash)).rowcount != 1:
                return None
        m = row._mapping
        return SignInAttempt(
            id_hash=m["id_hash"],
            state=m["state"],
            nonce=m["nonce"],
            code_verifier=m["code_verifier"],
            return_to=m["return_to"],
            created_at=m["created_at"],
        )

    def delete_ended(self, now: datetime, *, idle: timedelta) -> int:
        with write_transaction(self.engine) as conn:
            gone = conn.execute(
                sa.delete(web_sessions).where(
                    sa.or_(web_sessions.c.expires_at <= now, web_sessions.c.last_seen_at <= now - idle)
                )
            ).rowcount
            gone += conn.execute(
                sa.delete(web_sign_ins).where(web_sign_ins.c.created_at <= now - SIGN_IN_TTL)
            ).rowcount
        return int(gone)


def _principal_row(p: Principal) -> dict[str, Any]:
    return {"name": p.name, "groups": sorted(p.groups), "issuer": p.issuer, "person": p.person}


def _principal(row: dict[str, Any]) -> Principal:
    return Principal(
        name=row["name"], groups=frozenset(row["groups"]), issuer=row["issuer"], person=row.get("person")
    )
