"""SqlAuditStore: the audit log on its own, for what is not a grant change.

A grant change and its events are one transaction in ``SqlGrantStore``; this records events that
change no grant (a refused request, a token minted, a login, an auth failure, the broker's start) and
reads the chain back (search, history, verification, the head to anchor elsewhere). Both append to
the same hash chain (``audit_log``).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kubejit.audit.chain import GENESIS, VerifyResult
from kubejit.audit.event import StoredEvent
from kubejit.errors import InvalidInput
from kubejit.grants.ports import AuditEvent
from kubejit.ids import GrantId
from kubejit.store import audit_log
from kubejit.store.audit_verify import verify_stored
from kubejit.store.tables import audit_events
from kubejit.store.transactions import read_transaction, write_transaction


class SqlAuditStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, events: Sequence[AuditEvent]) -> None:
        """Audit events that change no grant (token minted, request refused, cleanup deferred)."""
        if not events:
            return
        with write_transaction(self.engine) as conn:
            audit_log.append(conn, events)

    def record_after_last(
        self,
        actions: Sequence[str],
        build: Callable[[list[tuple[str, dict[str, Any]]]], Sequence[AuditEvent]],
    ) -> None:
        """Append what ``build`` makes of the newest event of each of ``actions`` (action and details,
        in chain order; none when there is none), read under the writer lock: two replicas starting at
        once never both compare themselves with the same previous start (and both record the same
        change)."""
        with write_transaction(self.engine) as conn:
            newest = []
            for action in actions:
                query = (
                    sa.select(audit_events.c.seq, audit_events.c.details)
                    .where(audit_events.c.action == action)
                    .order_by(audit_events.c.seq.desc())
                    .limit(1)
                )
                row = conn.execute(query).first()
                if row is not None:
                    newest.append((row.seq, action, json.loads(row.details) if row.details else {}))
            newest.sort()
            audit_log.append(conn, build([(action, details) for _, action, details in newest]))

    # -- reading the chain ---------------------------------------------------------------------
    def iter_events(self, *, after_seq: int = 0, batch: int = 5000) -> Iterator[StoredEvent]:
        """Every event after ``after_seq`` in chain order, streamed in batches (for verification)."""
        return audit_log.iter_events(self.engine, after_seq=after_seq, batch=batch)

    def search_events(
        self,
        *,
        grant_id: GrantId | None = None,
        actor: str | None = None,
        cluster: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> builtins.list[StoredEvent]:
        """Events matching every given filter, newest first; ``until`` is exclusive."""
        _check_limit(limit)
        return audit_log.search(
            self.engine,
            grant_id=grant_id,
            actor=actor,
            cluster=cluster,
            action=action,
            since=since,
            until=until,
            before_seq=before_seq,
            limit=limit,
        )

    def audit_head(self) -> tuple[int, str]:
        """(seq, hash) of the newest event: an anchor worth copying somewhere an attacker cannot reach."""
        with read_transaction(self.engine) as conn:
            return audit_log.tail(conn)

    def verify_audit(self, *, after_seq: int = 0, prev_hash: str = GENESIS) -> VerifyResult:
        """Verify the stored chain, streaming: from the start, or from a checkpoint (seq and its hash)."""
        if after_seq and prev_hash == GENESIS:
            raise InvalidInput(
                f"verifying from seq {after_seq} needs the hash of event {after_seq}",
                hint="Pass prev_hash (the hash you recorded for that event), or verify from the start.",
            )
        return verify_stored(self.engine, after_seq=after_seq, prev_hash=prev_hash)


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise InvalidInput(f"limit must be at least 1, not {limit}")
