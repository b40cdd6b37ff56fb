"""Locks: an admin's "not this principal, not now" that wins over every policy rule (as Teleport's).

A lock names one user, one group or one grant. While it is active (not removed, not past its end),
a matching principal is refused at authentication on every route, and a locked grant gets no token.
Creating a lock also ends what it matches (``GrantService.lock``), so offboarding sticks: the
person's still-valid IdP token buys nothing new.

Pure data and rules; the store keeps locks (``LockStore``), the service sequences them.
Two creation rules keep admins able to undo a lock: nobody may create a lock that matches
themselves, and no lock may name one of the policy's ``adminGroups`` (it would lock every admin out,
and with them every way to unlock).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from kubejit.durations import format_duration
from kubejit.errors import InvalidInput, InvalidTransition, Locked
from kubejit.identity.principal import MAX_NAME_LENGTH, Principal

MAX_REASON_LENGTH = 1000


class LockKind(StrEnum):
    USER = "user"
    GROUP = "group"
    GRANT = "grant"


@dataclass(frozen=True)
class Lock:
    id: str
    kind: LockKind
    #: A principal name, a group name or a grant id, as ``kind`` says.
    target: str
    reason: str
    created_by: str
    created_at: datetime
    #: None: until someone unlocks it.
    expires_at: datetime | None = None
    removed_at: datetime | None = None
    #: Who unlocked it; None when it ran out (``lock.expired``).
    removed_by: str | None = None

    def active(self, now: datetime) -> bool:
        return self.removed_at is None and (self.expires_at is None or now < self.expires_at)

    def matches(self, principal: Principal) -> bool:
        if self.kind is LockKind.USER:
            return principal.name == self.target
        if self.kind is LockKind.GROUP:
            return self.target in principal.groups
        return False

    @property
    def subject(self) -> str:
        return f"{self.kind} {self.target}"

    def until(self) -> str:
        return (
            f"until {self.expires_at:%Y-%m-%d %H:%M:%S}Z" if self.expires_at else "until an admin unlocks it"
        )


def new_lock(
    lock_id: str,
    *,
    kind: LockKind,
    target: str,
    reason: str,
    actor: Principal,
    admin_groups: frozenset[str],
    now: datetime,
    duration: timedelta | None = None,
) -> Lock:
    """A lock ``actor`` may create; refuses locks that would lock out the actor or every admin."""
    target, reason = target.strip(), reason.strip()
    if not target or len(target) > MAX_NAME_LENGTH:
        raise InvalidInput(f"a {kind} lock needs a {kind} name of 1 to {MAX_NAME_LENGTH} characters")
    if not reason:
        raise InvalidInput(
            "a lock needs a reason", hint="Say why with --reason; it is shown to the locked person."
        )
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(f"the reason is longer than {MAX_REASON_LENGTH} characters")
    if duration is not None and duration <= timedelta(0):
        raise InvalidInput(f"a lock's duration must be positive, not {format_duration(duration)}")
    lock = Lock(
        id=lock_id,
        kind=kind,
        target=target,
        reason=reason,
        created_by=actor.name,
        created_at=now,
        expires_at=now + duration if duration is not None else None,
    )
    if kind is LockKind.GROUP and target in admin_groups:
        raise InvalidInput(
            f"group {target} is one of the policy's adminGroups: locking it would lock every admin out",
            hint="Lock the admin users you mean one by one (`kubejit lock --user NAME`).",
        )
    if lock.matches(actor):
        raise InvalidInput(
            f"this lock would match you ({actor.name}) and lock you out of unlocking it",
            hint="Ask another admin to create it.",
        )
    return lock


def remove(lock: Lock, *, by: str | None, now: datetime) -> Lock:
    """Unlock (``by`` an admin) or expire (``by`` None) a lock that is still in force."""
    if lock.removed_at is not None:
        raise InvalidTransition(
            f"lock {lock.id} was already removed at {lock.removed_at:%Y-%m-%d %H:%M:%S}Z",
            hint="List locks in force with `kubejit locks`.",
        )
    return replace(lock, removed_at=now, removed_by=by)


def first_match(locks: Iterable[Lock], principal: Principal, *, now: datetime) -> Lock | None:
    """The first active lock on this principal (by name or any group), oldest first."""
    found = [lock for lock in locks if lock.active(now) and lock.matches(principal)]
    return min(found, key=lambda lock: (lock.created_at, lock.id)) if found else None


def refusal(lock: Lock, who: str, *, admin_groups: frozenset[str]) -> Locked:
    """The error a locked principal sees: which lock, why, until when, and whom to ask."""
    admins = ", ".join(sorted(admin_groups)) or "the policy's adminGroups"
    return Locked(
        f"{who} is locked by lock {lock.id} ({lock.subject}), {lock.until()}: {lock.reason}",
        hint=f"Contact a kubejit admin (members of {admins}); they can lift it with `kubejit unlock {lock.id}`.",
    )
