"""SqlGrantStore: the GrantStore port on SQLite or PostgreSQL.

Each grant write is one transaction that also appends its audit events to the hash chain, so a
state change is never visible without its record, nor a record without its change. Writes are
optimistic: ``save`` updates only the version it read, and a lost race is a ``Conflict``. Events
that change no grant, and reading the chain back, are ``store.audit_store.SqlAuditStore``'s.
"""

from __future__ import annotations

import builtins
import heapq
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kubejit.clock import Clock, SystemClock
from kubejit.errors import Conflict, InvalidInput, NotFound
from kubejit.grants.model import Grant, GrantState
from kubejit.grants.ports import AuditEvent
from kubejit.ids import ClusterName, GrantId, PrincipalName
from kubejit.store import audit_log
from kubejit.store.grant_rows import grant_to_row, row_to_grant
from kubejit.store.tables import grants, tokens
from kubejit.store.transactions import Prepared, driver_execute, read_transaction, write_transaction

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
#: States whose grants end at ``expires_at``; pending ones end at ``pending_until``.
_EXPIRING_STATES = (GrantState.ACTIVE, GrantState.APPROVED)


@dataclass(frozen=True)
class RequesterSummary:
    """A person (or workload) who has requested access, for admin listings and offboarding."""

    requester: PrincipalName
    last_request_at: datetime
    active_grants: int


# Built once with bind parameters: building an UPDATE of every column per call cost more than running it.
_SAVE = Prepared(
    sa.update(grants)
    .where(grants.c.id == sa.bindparam("old_id"), grants.c.version == sa.bindparam("old_version"))
    .values({c.name: sa.bindparam(f"new_{c.name}") for c in grants.c if c.name != "id"})
)
# The hot path's other statements, built once too: building a SELECT cost ~5x executing it (SQLite).
_GET = Prepared(sa.select(grants).where(grants.c.id == sa.bindparam("id")))
_EXISTS = sa.select(grants.c.id).where(grants.c.id == sa.bindparam("id"))
_INSERT = sa.insert(grants)
_TOKENS_ISSUED = sa.select(sa.func.count()).select_from(tokens).where(tokens.c.grant_id == sa.bindparam("id"))
_GET_WITH_TOKENS = Prepared(
    sa.select(grants, _TOKENS_ISSUED.scalar_subquery().label("tokens_issued")).where(
        grants.c.id == sa.bindparam("id")
    )
)
_INSERT_TOKEN = Prepared(
    sa.insert(tokens).values({c.name: sa.bindparam(c.name) for c in tokens.c if c.name != "id"})
)
#: Before a token's INSERT: does its grant exist, is its hash known (one untyped statement, per paramstyle).
_TOKEN_CHECK = {
    style: f"SELECT (SELECT 1 FROM grants WHERE id = {m}), (SELECT 1 FROM tokens WHERE token_sha256 = {m})"
    for style, m in (("qmark", "?"), ("pyformat", "%s"), ("format", "%s"))
}


class SqlGrantStore:
    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or SystemClock()

    # -- grants --------------------------------------------------------------------------------
    def add(self, grant: Grant, events: Sequence[AuditEvent]) -> Grant:
        """Insert a new grant (stored as version 1) and its events in one transaction."""
        stored = replace(grant, version=1)
        row = {**grant_to_row(stored), "version": stored.version}
        with write_transaction(self.engine) as conn:
            if _exists(conn, grant.id):
                raise Conflict(f"grant {grant.id} already exists", hint="Request again; a new id is chosen.")
            conn.execute(_INSERT, row)
            audit_log.append(conn, events)
        return stored

    def save(self, grant: Grant, events: Sequence[AuditEvent]) -> Grant:
        """Write ``grant`` if nobody saved it since it was read (same version), plus its events."""
        params = {f"new_{k}": v for k, v in grant_to_row(grant).items() if k != "id"}
        params.update(new_version=grant.version + 1, old_id=grant.id, old_version=grant.version)
        with write_transaction(self.engine) as conn:
            if _SAVE.execute(conn, params) != 1:
                if not _exists(conn, grant.id):
                    raise _not_found(grant.id)
                raise Conflict(
                    f"grant {grant.id} was changed since it was read (version {grant.version})",
                    hint="another replica changed this grant; retry",
                )
            audit_log.append(conn, events)
        return replace(grant, version=grant.version + 1)

    def get(self, grant_id: GrantId) -> Grant:
        with read_transaction(self.engine) as conn:
            rows = _GET.rows(conn, {"id": grant_id})
        if not rows:
            raise _not_found(grant_id)
        return row_to_grant(rows[0])

    def list(
        self,
        *,
        requester: PrincipalName | None = None,
        states: frozenset[GrantState] | None = None,
        cluster: ClusterName | None = None,
        limit: int = 100,
    ) -> builtins.list[Grant]:
        """Matching grants, newest first."""
        _check_limit(limit)
        conditions = []
        if requester is not None:
            conditions.append(grants.c.requester == requester)
        if cluster is not None:
            conditions.append(grants.c.cluster == cluster)
        if states is not None:
            conditions.append(grants.c.state.in_(sorted(s.value for s in states)))
        query = (
            sa.select(grants)
            .where(*conditions)
            .order_by(grants.c.created_at.desc(), grants.c.id.desc())
            .limit(limit)
        )
        with read_transaction(self.engine) as conn:
            return [row_to_grant(row._mapping) for row in conn.execute(query)]

    def pending_for(
        self,
        approver: PrincipalName,
        groups: frozenset[str],
        *,
        approver_person: str | None = None,
        limit: int = 1000,
    ) -> builtins.list[Grant]:
        """Pending grants one of ``groups`` may decide, not ``approver``'s own, newest first.

        "Own" counts people: a request whose ``requester_person`` is ``approver_person`` was made by
        this human under another login, which the lifecycle would refuse them to decide anyway.
        ``approver_groups`` is a JSON array: the membership test unnests it in SQL (SQLite's
        ``json_each``, PostgreSQL's ``json_array_elements_text``), so the limit applies after it.
        """
        _check_limit(limit)
        if not groups:
            return []
        decides = self._has_member(grants.c.approver_groups, groups)
        query = (
            sa.select(grants)
            .where(grants.c.state == GrantState.PENDING.value, grants.c.requester != approver, decides)
            .where(*_not_requested_by_person(approver_person))
            .order_by(grants.c.created_at.desc(), grants.c.id.desc())
            .limit(limit)
        )
        with read_transaction(self.engine) as conn:
            return [row_to_grant(row._mapping) for row in conn.execute(query)]

    def needing_review(
        self,
        *,
        groups: frozenset[str] | None = None,
        excluding: PrincipalName | None = None,
        excluding_person: str | None = None,
        limit: int = 1000,
    ) -> builtins.list[Grant]:
        """Grants flagged for review, newest first: all, or those a reviewer of ``groups`` may review
        (``reviewer_groups`` unnested in SQL, as ``pending_for`` does, so the limit applies after it)."""
        _check_limit(limit)
        if groups is not None and not groups:
            return []
        query = sa.select(grants).where(grants.c.needs_review.is_(True))
        if groups is not None:
            query = query.where(self._has_member(grants.c.reviewer_groups, groups))
        if excluding is not None:
            query = query.where(grants.c.requester != excluding)
        query = query.where(*_not_requested_by_person(excluding_person))
        query = query.order_by(grants.c.created_at.desc(), grants.c.id.desc()).limit(limit)
        with read_transaction(self.engine) as conn:
            return [row_to_grant(row._mapping) for row in conn.execute(query)]

    def _has_member(self, column: sa.Column[object], groups: frozenset[str]) -> sa.ColumnElement[bool]:
        """Whether the JSON array ``column`` holds one of ``groups`` (whole names, no patterns)."""
        unnest = (
            sa.func.json_each if self.engine.dialect.name == "sqlite" else sa.func.json_array_elements_text
        )
        members = unnest(column).table_valued("value")
        return sa.exists(
            sa.select(sa.literal(1)).select_from(members).where(members.c.value.in_(sorted(groups)))
        )

    def due_for_expiry(self, now: datetime, *, limit: int = 500) -> builtins.list[Grant]:
        """Grants whose time is up, earliest first: one index range scan per state, merged."""
        _check_limit(limit)
        scans = [(grants.c.expires_at, state) for state in _EXPIRING_STATES]
        scans.append((grants.c.pending_until, GrantState.PENDING))
        with read_transaction(self.engine) as conn:
            batches = [
                [row_to_grant(r._mapping) for r in conn.execute(_due_query(column, state, now, limit))]
                for column, state in scans
            ]
        return builtins.list(heapq.merge(*batches, key=_due_at))[:limit]

    def record_token(
        self,
        grant_id: GrantId,
        *,
        token_id: str,
        token_sha256: str,
        expires_at: datetime,
        events: Sequence[AuditEvent] = (),
    ) -> None:
        """Keep a minted token's id and sha256 (never the token), with its audit events, in one transaction."""
        if not _SHA256_HEX.fullmatch(token_sha256):
            # The value is deliberately not echoed: a caller passing the token itself must not log it.
            raise InvalidInput(
                "token_sha256 is not a lowercase hex sha256 digest",
                hint="Pass hashlib.sha256(token.encode()).hexdigest(), never the token.",
            )
        row = {
            "grant_id": grant_id,
            "token_id": token_id,
            "token_sha256": token_sha256,
            "expires_at": expires_at,
            "created_at": self.clock.now(),
        }
        with write_transaction(self.engine) as conn:
            [(grant_exists, token_known)] = driver_execute(
                conn, _TOKEN_CHECK[conn.dialect.paramstyle], (grant_id, token_sha256)
            )
            if grant_exists is None:
                raise _not_found(grant_id)
            if token_known is not None:
                raise Conflict(f"this token is already recorded (grant {grant_id}, token id {token_id})")
            _INSERT_TOKEN.execute(conn, row)
            audit_log.append(conn, events)

    def get_with_tokens(self, grant_id: GrantId) -> tuple[Grant, int]:
        with read_transaction(self.engine) as conn:
            rows = _GET_WITH_TOKENS.rows(conn, {"id": grant_id})
        if not rows:
            raise _not_found(grant_id)
        return row_to_grant(rows[0]), int(rows[0]["tokens_issued"])

    # -- listings for admins and metrics -------------------------------------------------------
    def list_requesters(self) -> builtins.list[RequesterSummary]:
        """Everyone who has requested access: last request time and how many grants are active now."""
        active = sa.func.sum(sa.case((grants.c.state == GrantState.ACTIVE.value, 1), else_=0))
        query = (
            sa.select(grants.c.requester, sa.func.max(grants.c.created_at), active)
            .group_by(grants.c.requester)
            .order_by(grants.c.requester)
        )
        with read_transaction(self.engine) as conn:
            rows = conn.execute(query).all()
        return [
            RequesterSummary(
                requester=PrincipalName(name),
                last_request_at=last,
                active_grants=int(count or 0),
            )
            for name, last, count in rows
        ]

    def count_by_state(self) -> dict[str, int]:
        """Grants per state value (every state present, zeros included, so gauges drop to 0)."""
        query = sa.select(grants.c.state, sa.func.count()).group_by(grants.c.state)
        with read_transaction(self.engine) as conn:
            counts = {str(state): int(n) for state, n in conn.execute(query)}
        return {state.value: counts.get(state.value, 0) for state in GrantState}


def _not_requested_by_person(person: str | None) -> list[sa.ColumnElement[bool]]:
    """No condition without a person; else the requester's person is unknown or someone else."""
    if person is None:
        return []
    column = grants.c.requester_person
    return [sa.or_(column.is_(None), column != person)]


def _due_query(
    column: sa.Column[datetime], state: GrantState, now: datetime, limit: int
) -> sa.Select[tuple[object, ...]]:
    return sa.select(grants).where(grants.c.state == state.value, column <= now).order_by(column).limit(limit)


def _due_at(grant: Grant) -> datetime:
    if grant.state is GrantState.PENDING or grant.expires_at is None:
        return grant.pending_until
    return grant.expires_at


def _exists(conn: Connection, grant_id: GrantId) -> bool:
    return conn.execute(_EXISTS, {"id": grant_id}).first() is not None


def _not_found(grant_id: GrantId) -> NotFound:
    return NotFound(f"grant {grant_id} not found", hint="List your grants with `kubejit grants`.")


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise InvalidInput(f"limit must be at least 1, not {limit}")
