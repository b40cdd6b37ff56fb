"""SqlLockStore: the LockStore port. Every lock write appends its audit events in the same transaction.

The check on every request is one query on the ``(kind, target)`` index for the caller's name, their
groups and (for token mint) one grant; the grant service keeps its answer for a second at most.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kubejit.errors import InvalidTransition, NotFound
from kubejit.grants.locks import Lock, LockKind
from kubejit.grants.ports import AuditEvent
from kubejit.store import audit_log
from kubejit.store.tables import locks, users
from kubejit.store.transactions import Prepared, read_transaction, write_transaction

_IN_FORCE = locks.c.removed_at.is_(None)


class SqlLockStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_lock(self, lock: Lock, events: Sequence[AuditEvent]) -> Lock:
        with write_transaction(self.engine) as conn:
            conn.execute(sa.insert(locks).values(**_row(lock)))
            audit_log.append(conn, events)
        return lock

    def remove_lock(self, lock: Lock, events: Sequence[AuditEvent]) -> Lock:
        """Conditional on the lock still being in force: two admins (or replicas) cannot both remove it."""
        update = (
            sa.update(locks)
            .where(locks.c.id == lock.id, locks.c.removed_at.is_(None))
            .values(removed_at=lock.removed_at, removed_by=lock.removed_by)
        )
        with write_transaction(self.engine) as conn:
            if conn.execute(update).rowcount != 1:
                raise InvalidTransition(
                    f"lock {lock.id} was already removed", hint="List locks in force with `kubejit locks`."
                )
            audit_log.append(conn, events)
        return lock

    def get_lock(self, lock_id: str) -> Lock:
        with read_transaction(self.engine) as conn:
            row = conn.execute(sa.select(locks).where(locks.c.id == lock_id)).first()
        if row is None:
            raise NotFound(f"lock {lock_id} not found", hint="List locks with `kubejit locks`.")
        return _lock(row._mapping)

    def active_locks(
        self,
        now: datetime,
        *,
        users: Sequence[str] = (),
        groups: Sequence[str] = (),
        grants: Sequence[str] = (),
    ) -> builtins.list[Lock]:
        wanted = ((LockKind.USER, users), (LockKind.GROUP, groups), (LockKind.GRANT, grants))
        shape = tuple((kind, len(targets)) for kind, targets in wanted if targets)
        if not shape:
            return []
        params: dict[str, Any] = {
            f"{kind.value}_{n}": target for kind, targets in wanted for n, target in enumerate(targets)
        }
        params["now"] = now
        with read_transaction(self.engine) as conn:
            return [_lock(row) for row in _active_query(shape).rows(conn, params)]

    def list_locks(self, *, include_removed: bool = False, limit: int = 1000) -> builtins.list[Lock]:
        """Newest first."""
        query = sa.select(locks).order_by(locks.c.created_at.desc(), locks.c.id.desc()).limit(limit)
        if not include_removed:
            query = query.where(_IN_FORCE)
        with read_transaction(self.engine) as conn:
            return [_lock(r._mapping) for r in conn.execute(query)]

    def due_locks(self, now: datetime, *, limit: int = 500) -> builtins.list[Lock]:
        query = (
            sa.select(locks)
            .where(_IN_FORCE, locks.c.expires_at.is_not(None), locks.c.expires_at <= now)
            .order_by(locks.c.expires_at)
            .limit(limit)
        )
        with read_transaction(self.engine) as conn:
            return [_lock(r._mapping) for r in conn.execute(query)]

    def people_in_group(self, group: str) -> builtins.list[str]:
        """People whose last-seen groups include ``group`` (JSON lists, filtered here: portable)."""
        with read_transaction(self.engine) as conn:
            rows = conn.execute(sa.select(users.c.username, users.c.groups).order_by(users.c.username))
            return [name for name, found in rows if group in (found or ())]


@functools.lru_cache(maxsize=256)
def _active_query(shape: tuple[tuple[LockKind, int], ...]) -> Prepared:
    """The in-force query for ``shape`` ((kind, how many targets) ...), built once per shape: it runs
    on every request and activation, and building it cost more than running it. One bound parameter
    per target (``user_0``, ``group_3``...): SQLAlchemy's "expanding" IN re-renders the SQL each time."""
    matches = sa.or_(
        *(
            sa.and_(
                locks.c.kind == kind.value,
                locks.c.target.in_([sa.bindparam(f"{kind.value}_{n}") for n in range(count)]),
            )
            for kind, count in shape
        )
    )
    now = sa.bindparam("now", type_=locks.c.expires_at.type)
    return Prepared(
        sa.select(locks).where(
            matches, _IN_FORCE, sa.or_(locks.c.expires_at.is_(None), locks.c.expires_at > now)
        )
    )


def _row(lock: Lock) -> dict[str, Any]:
    return {
        "id": lock.id,
        "kind": lock.kind.value,
        "target": lock.target,
        "reason": lock.reason,
        "created_by": lock.created_by,
        "created_at": lock.created_at,
        "expires_at": lock.expires_at,
        "removed_at": lock.removed_at,
        "removed_by": lock.removed_by,
    }


def _lock(row: Any) -> Lock:
    return Lock(
        id=row["id"],
        kind=LockKind(row["kind"]),
        target=row["target"],
        reason=row["reason"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        removed_at=row["removed_at"],
        removed_by=row["removed_by"],
    )
