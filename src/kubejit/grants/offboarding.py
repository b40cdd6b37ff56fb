"""Locks and offboarding: the admin's way to shut a person, a group or a grant out, at once.

``Lockouts`` is part of the grant service (``GrantService.lockouts``), not a second one: it ends
grants with the service's own store, cluster and audit steps (saved as ended first, then the cluster
objects deleted), so store → cluster → audit is still sequenced in one place. What it adds is the
lock itself (``grants/locks.py``, pure; ``lock_guard.py``, the per-request check) and the loop that
ends everything a lock or an offboarding matches, skipping what ended meanwhile.
See docs/offboarding.md.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from kubejit.errors import ConfigError, Conflict, KubejitError, NotFound, PermissionDenied
from kubejit.grants import lifecycle, locks
from kubejit.grants.lock_guard import LockGuard
from kubejit.grants.locks import Lock, LockKind
from kubejit.grants.model import LIVE_STATES, SYSTEM_ACTOR, Grant
from kubejit.grants.ports import AuditEvent, LockStore
from kubejit.identity.principal import Principal
from kubejit.ids import GrantId, PrincipalName

if TYPE_CHECKING:
    from kubejit.grants.service import GrantService

log = logging.getLogger(__name__)

#: Offboarding ends open grants a batch at a time and lists again until none is left.
END_BATCH = 500
#: Passes in a row that end nothing (every grant changed under us) before offboarding gives up.
MAX_STALLED_PASSES = 3


def new_lock_id() -> str:
    return "l" + secrets.token_hex(6)


@dataclass
class EndedGrants:
    """What ending someone's grants did: offboarding and locks report it, and a rerun ends nothing."""

    ended: list[Grant] = field(default_factory=list)
    #: Ended meanwhile by someone else (expired, revoked, denied): nothing left to do.
    skipped: list[GrantId] = field(default_factory=list)
    #: Ended in the store, but the cluster did not answer: the reconciler deletes the objects.
    cleanup_deferred: list[GrantId] = field(default_factory=list)


@dataclass(frozen=True)
class Offboarding:
    user: str
    grants: EndedGrants
    #: The user lock that keeps them out (None with ``lock=False``); ``lock_created`` False: it existed.
    lock: Lock | None = None
    lock_created: bool = False


@dataclass(frozen=True)
class LockResult:
    lock: Lock
    grants: EndedGrants


class Lockouts:
    """Locks (lock, unlock, list, expiry) and offboarding, and the lock checks of the grant path."""

    def __init__(
        self, grants: GrantService, store: LockStore | None, *, id_factory: Callable[[], str] = new_lock_id
    ) -> None:
        self._grants = grants
        #: Admin locks (docs/offboarding.md); None only in tests that need none.
        self.guard = (
            LockGuard(store, clock=grants.clock, admin_groups=grants.policy.admin_groups) if store else None
        )
        self._new_lock_id = id_factory

    def revoke_user(
        self, principal: Principal, user: str, *, reason: str = "", lock: bool = True
    ) -> Offboarding:
        """Offboarding: lock the person out (unless ``lock`` is False), then end all they hold or wait for.

        The lock comes first, so a grant requested meanwhile is refused or ended (``unless_locked``).
        Idempotent: grants that ended meanwhile are skipped, a second run ends nothing and reuses the lock.
        """
        self._require_admin(principal, f"{principal.name} may not revoke another person's grants")
        user = user.strip()
        why = reason.strip() or f"offboarding of {user}"
        held = self._guard().store.active_locks(self._grants.clock.now(), users=(user,)) if lock else []
        created = lock and not held
        if created:
            held = [self._add_lock(principal, LockKind.USER, user, why, None)]
        lock_id = held[0].id if held else None
        ended = self._end_open_grants(principal, user, why=why, lock_id=lock_id)
        return Offboarding(user=user, grants=ended, lock=held[0] if held else None, lock_created=created)

    def _end_open_grants(
        self,
        actor: Principal,
        requester: str,
        *,
        why: str,
        lock_id: str | None,
        into: EndedGrants | None = None,
    ) -> EndedGrants:
        """End every open grant of ``requester``, a batch at a time, until none is left open."""
        tally = into if into is not None else EndedGrants()
        stalled = 0
        while stalled < MAX_STALLED_PASSES:
            batch = self._grants.store.list(
                requester=PrincipalName(requester), states=lifecycle.OPEN_STATES, limit=END_BATCH
            )
            if not batch:
                return tally
            progress = len(tally.ended) + len(tally.skipped)
            for grant in batch:
                self._end_one(actor, grant, why=why, lock_id=lock_id, tally=tally)
            stalled = stalled + 1 if len(tally.ended) + len(tally.skipped) == progress else 0
        raise Conflict(
            f"grants of {requester} kept changing while they were being ended",
            hint="Run it again: what has ended is skipped.",
        )

    def _end_one(
        self, actor: Principal, grant: Grant, *, why: str, lock_id: str | None, tally: EndedGrants
    ) -> None:
        """Revoke one grant as read; if it changed meanwhile, re-read: ended is skipped, open is left
        for the caller's next pass (it is listed again, at its new version)."""
        try:
            ended = lifecycle.revoke(
                grant, actor=actor, is_admin=True, reason=why, now=self._grants.clock.now()
            )
            extra = {"lock": lock_id} if lock_id else {}
            saved = self._grants.store.save(
                ended, [self._grants._event("grant.revoked", actor.name, ended, why=why, **extra)]
            )
        except Conflict:  # InvalidTransition too: it ended, or moved on, since it was listed
            if self._grants.store.get(grant.id).state not in lifecycle.OPEN_STATES:
                tally.skipped.append(grant.id)
            return
        tally.ended.append(saved)
        if grant.state in LIVE_STATES and not self._cleanup_known(saved):
            tally.cleanup_deferred.append(saved.id)

    def _cleanup_known(self, grant: Grant) -> bool:
        """``_cleanup`` for a grant that has ended; False when the cluster is unreachable or unknown."""
        try:
            adapter = self._grants._cluster(grant.cluster)
        except NotFound as exc:
            self._grants.audit.record(
                [self._grants._event("grant.cleanup_deferred", SYSTEM_ACTOR, grant, error=exc.message)]
            )
            return False
        return self._grants._cleanup(grant, adapter)

    def _guard(self) -> LockGuard:
        if self.guard is None:
            raise ConfigError("this broker was built without a lock store", hint="Build it with wiring.")
        return self.guard

    def _require_admin(self, principal: Principal, message: str) -> None:
        if not self._grants.is_admin(principal):
            raise PermissionDenied(message, hint="This needs membership in one of the policy's adminGroups.")

    def check_not_locked(self, principal: Principal) -> None:
        """Raise ``Locked`` if a lock in force matches the caller: every route asks, so it is cached."""
        if self.guard is not None:
            self.guard.check(principal)

    def unless_locked(self, principal: Principal, grant: Grant) -> Grant:
        """Checked again, uncached, once the new grant is stored: a lock committed meanwhile (on any
        replica) either saw this grant and ends it, or is seen here and this ends it."""
        if self.guard is None or (held := self.guard.fresh(principal)) is None:
            return grant
        self._end_locked(grant, held)
        raise self.guard.refusal(held, principal.name)

    def end_if_locked(self, grant: Grant) -> None:
        """Before activation: a grant under a lock (on it or its requester) is ended and refused."""
        if self.guard is not None and (held := self.guard.on_grant(grant.id, grant.requester)) is not None:
            self._end_locked(grant, held)
            raise self.guard.refusal(held, grant.requester)

    def _end_locked(self, grant: Grant, held: Lock) -> None:
        actor = Principal(SYSTEM_ACTOR, self._grants.policy.admin_groups)
        why = f"lock {held.id}: {held.reason}"
        self._end_one(actor, grant, why=why, lock_id=held.id, tally=EndedGrants())

    def refuse_locked_grant(self, grant: Grant) -> None:
        """A token for a grant under a lock (on it or its requester) is refused."""
        if self.guard is not None and (held := self.guard.on_grant(grant.id, grant.requester)) is not None:
            raise self.guard.refusal(held, f"grant {grant.id}")

    def _add_lock(
        self, principal: Principal, kind: LockKind, target: str, reason: str, duration: timedelta | None
    ) -> Lock:
        guard = self._guard()
        lock = locks.new_lock(
            self._new_lock_id(),
            kind=kind,
            target=target,
            reason=reason,
            actor=principal,
            admin_groups=self._grants.policy.admin_groups,
            now=self._grants.clock.now(),
            duration=duration,
        )
        if kind is LockKind.GRANT:
            self._grants.store.get(
                GrantId(lock.target)
            )  # NotFound for an unknown grant, before anything is written
        saved = guard.store.add_lock(lock, [self._lock_event("lock.created", principal.name, lock)])
        guard.invalidate()
        return saved

    def lock(
        self,
        principal: Principal,
        *,
        kind: LockKind,
        target: str,
        reason: str,
        duration: timedelta | None = None,
    ) -> LockResult:
        """Lock a user, a group or a grant out (admins only), then end the open grants it matches.

        A group lock ends the grants of everyone last seen in that group (the people table); anyone
        else in it is refused at their next request and cannot get a new grant.
        """
        self._require_admin(principal, f"{principal.name} may not create locks")
        lock = self._add_lock(principal, kind, target, reason, duration)
        why = f"lock {lock.id}: {lock.reason}"
        tally = EndedGrants()
        if kind is LockKind.GRANT:
            grant = self._grants.store.get(GrantId(lock.target))
            if grant.state in lifecycle.OPEN_STATES:
                self._end_one(principal, grant, why=why, lock_id=lock.id, tally=tally)
        users = [lock.target] if kind is LockKind.USER else []
        if kind is LockKind.GROUP:
            users = self._guard().store.people_in_group(lock.target)
        for user in users:
            self._end_open_grants(principal, user, why=why, lock_id=lock.id, into=tally)
        return LockResult(lock=lock, grants=tally)

    def unlock(self, principal: Principal, lock_id: str) -> Lock:
        self._require_admin(principal, f"{principal.name} may not remove locks")
        guard = self._guard()
        removed = locks.remove(guard.store.get_lock(lock_id), by=principal.name, now=self._grants.clock.now())
        saved = guard.store.remove_lock(removed, [self._lock_event("lock.removed", principal.name, removed)])
        guard.invalidate()
        return saved

    def list_locks(self, principal: Principal, *, include_removed: bool = False) -> list[Lock]:
        self._require_admin(principal, f"{principal.name} may not list locks")
        found = self._guard().store.list_locks(include_removed=include_removed)
        now = self._grants.clock.now()
        return found if include_removed else [lock for lock in found if lock.active(now)]

    def expire_locks(self) -> list[Lock]:
        """A sweeper tick: mark locks past their end as removed, with ``lock.expired``.

        A lock stops applying at its end time whether or not this has run; this only records it.
        """
        if self.guard is None:
            return []
        done = []
        for lock in self.guard.store.due_locks(self._grants.clock.now()):
            try:
                ended = locks.remove(lock, by=None, now=self._grants.clock.now())
                done.append(
                    self.guard.store.remove_lock(
                        ended, [self._lock_event("lock.expired", SYSTEM_ACTOR, ended)]
                    )
                )
            except KubejitError as exc:  # another replica recorded it first
                log.info("expiry of lock %s skipped: %s", lock.id, exc.message)
        if done:
            self.guard.invalidate()
        return done

    def _lock_event(self, action: str, actor: str, lock: Lock) -> AuditEvent:
        return AuditEvent(
            action=action,
            actor=actor,
            at=self._grants.clock.now(),
            subject=lock.target if lock.kind is LockKind.USER else None,
            grant_id=GrantId(lock.target) if lock.kind is LockKind.GRANT else None,
            details={
                "lock": lock.id,
                "kind": str(lock.kind),
                "target": lock.target,
                "reason": lock.reason,
                "created_by": lock.created_by,
                "expires_at": lock.expires_at,
            },
        )
