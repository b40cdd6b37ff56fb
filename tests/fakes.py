"""In-memory fakes of kubejit's OWN ports (never of the Kubernetes API), for service unit tests."""

from __future__ import annotations

import builtins
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from kubejit.errors import ClusterError, Conflict, InvalidInput, InvalidTransition, NotFound
from kubejit.grants.locks import Lock, LockKind
from kubejit.grants.model import Grant, GrantState
from kubejit.grants.ports import AuditEvent, MintedToken, OwnedObject
from kubejit.ids import ClusterName, GrantId, PrincipalName


class MemoryStore:
    """The GrantStore port in memory, behaving as the SQL store does (tests/integration/
    test_grant_store_contract.py runs the same checks on both): ordering, limits, errors and all."""

    def __init__(self) -> None:
        self.grants: dict[GrantId, Grant] = {}
        self.events: list[AuditEvent] = []
        self.tokens: list[tuple[GrantId, str, str]] = []

    def add(self, grant: Grant, events: Sequence[AuditEvent]) -> Grant:
        if grant.id in self.grants:
            raise Conflict(f"grant {grant.id} already exists", hint="Request again; a new id is chosen.")
        stored = replace(grant, version=1)
        self.grants[grant.id] = stored
        self.events.extend(events)
        return stored

    def save(self, grant: Grant, events: Sequence[AuditEvent]) -> Grant:
        if self.get(grant.id).version != grant.version:
            raise Conflict(
                f"grant {grant.id} was changed since it was read (version {grant.version})",
                hint="another replica changed this grant; retry",
            )
        stored = replace(grant, version=grant.version + 1)
        self.grants[grant.id] = stored
        self.events.extend(events)
        return stored

    def get(self, grant_id: GrantId) -> Grant:
        try:
            return self.grants[grant_id]
        except KeyError:
            raise _not_found(grant_id) from None

    def list(
        self,
        *,
        requester: PrincipalName | None = None,
        states: frozenset[GrantState] | None = None,
        cluster: ClusterName | None = None,
        limit: int = 100,
    ) -> builtins.list[Grant]:
        _check_limit(limit)
        found = [
            g
            for g in self.grants.values()
            if (requester is None or g.requester == requester)
            and (states is None or g.state in states)
            and (cluster is None or g.cluster == cluster)
        ]
        return sorted(found, key=lambda g: (g.created_at, g.id), reverse=True)[:limit]  # newest first

    def pending_for(
        self,
        approver: PrincipalName,
        groups: frozenset[str],
        *,
        approver_person: str | None = None,
        limit: int = 1000,
    ) -> builtins.list[Grant]:
        _check_limit(limit)
        found = [
            g
            for g in self.grants.values()
            if g.state is GrantState.PENDING
            and g.requester != approver
            and not (approver_person is not None and g.requester_person == approver_person)
            and g.approver_groups & groups
        ]
        return sorted(found, key=lambda g: (g.created_at, g.id), reverse=True)[:limit]

    def needing_review(
        self,
        *,
        groups: frozenset[str] | None = None,
        excluding: PrincipalName | None = None,
        excluding_person: str | None = None,
        limit: int = 1000,
    ) -> builtins.list[Grant]:
        _check_limit(limit)
        found = [
            g
            for g in self.grants.values()
            if g.needs_review
            and (groups is None or g.reviewer_groups & groups)
            and (excluding is None or g.requester != excluding)
            and not (excluding_person is not None and g.requester_person == excluding_person)
        ]
        return sorted(found, key=lambda g: (g.created_at, g.id), reverse=True)[:limit]

    def due_for_expiry(self, now: datetime, *, limit: int = 500) -> builtins.list[Grant]:
        """Active and approved grants past expires_at, pending ones past pending_until, earliest first."""
        _check_limit(limit)
        due = [(at, g) for g in self.grants.values() if (at := _due_at(g)) is not None and at <= now]
        return [g for _, g in sorted(due, key=lambda pair: (pair[0], _DUE_STATES.index(pair[1].state)))][
            :limit
        ]

    def record(self, events: Sequence[AuditEvent]) -> None:
        self.events.extend(events)

    def record_token(
        self,
        grant_id: GrantId,
        *,
        token_id: str,
        token_sha256: str,
        expires_at: datetime,
        events: Sequence[AuditEvent] = (),
    ) -> None:
        if not re.fullmatch(r"[0-9a-f]{64}", token_sha256):
            raise InvalidInput("token_sha256 is not a lowercase hex sha256 digest")
        self.get(grant_id)
        if any(t[2] == token_sha256 for t in self.tokens):
            raise Conflict(f"this token is already recorded (grant {grant_id}, token id {token_id})")
        self.tokens.append((grant_id, token_id, token_sha256))
        self.events.extend(events)

    def get_with_tokens(self, grant_id: GrantId) -> tuple[Grant, int]:
        return self.get(grant_id), sum(1 for t in self.tokens if t[0] == grant_id)

    def count_by_state(self) -> dict[str, int]:
        """Every state, zeros included (as the SQL store counts them, so gauges drop to 0)."""
        counts = Counter(g.state.value for g in self.grants.values())
        return {state.value: counts[state.value] for state in GrantState}

    def actions(self) -> builtins.list[str]:
        return [e.action for e in self.events]


class FakeCluster:
    """Records what the service asks of a cluster; ``fail_with`` makes the next ensure fail."""

    def __init__(self, name: str = "dev", *, uses_service_accounts: bool = True) -> None:
        self.name = ClusterName(name)
        self.uses_service_accounts = uses_service_accounts
        self.objects: dict[GrantId, list[OwnedObject]] = {}
        self.fail_with: ClusterError | None = None
        self.fail_delete: ClusterError | None = None
        #: ``list_owned`` raises it while set (the reconciler's view of an outage).
        self.fail_list: ClusterError | None = None
        #: ``expiration_seconds`` of every token minted, in order.
        self.minted_seconds: list[int] = []
        self.mints: Counter[str] = Counter()
        #: Run once, at the start of the next ensure / list: what another replica does meanwhile.
        self.during_ensure: Callable[[], object] | None = None
        self.during_list: Callable[[], object] | None = None

    @staticmethod
    def _once(hook: Callable[[], object] | None) -> None:
        if hook is not None:
            hook()

    def ensure_grant_objects(self, grant: Grant) -> None:
        hook, self.during_ensure = self.during_ensure, None
        self._once(hook)
        if self.fail_with is not None:
            raise self.fail_with
        sa = OwnedObject("ServiceAccount", "kubejit-grants", grant.service_account, grant.id)
        bindings = [
            OwnedObject("RoleBinding", ns, f"kubejit-{grant.id}", grant.id) for ns in grant.namespaces
        ]
        self.objects[grant.id] = [sa, *bindings] if self.uses_service_accounts else bindings

    def delete_grant_objects(self, grant_id: GrantId) -> None:
        if self.fail_delete is not None:
            raise self.fail_delete
        self.objects.pop(grant_id, None)

    def mint_token(self, grant: Grant, *, expiration_seconds: int) -> MintedToken:
        from datetime import UTC

        self.minted_seconds.append(expiration_seconds)
        # Each TokenRequest returns a new token (the stores refuse one recorded twice): -2, -3, ... after the first.
        self.mints[grant.id] += 1
        serial = "" if self.mints[grant.id] == 1 else f"-{self.mints[grant.id]}"
        return MintedToken(
            token=f"secret-token-{grant.id}{serial}",
            expires_at=datetime.now(UTC) + timedelta(seconds=expiration_seconds),
            token_id=f"jti-{grant.id}{serial}",
        )

    def list_owned(self) -> list[OwnedObject]:
        hook, self.during_list = self.during_list, None
        self._once(hook)
        if self.fail_list is not None:
            raise self.fail_list
        return [o for objs in self.objects.values() for o in objs]


class MemoryLockStore:
    """The LockStore port in memory; ``people`` stands in for the people-seen table (user -> groups)."""

    def __init__(self) -> None:
        self.locks: dict[str, Lock] = {}
        self.events: list[AuditEvent] = []
        self.people: dict[str, frozenset[str]] = {}
        self.queries = 0

    def add_lock(self, lock: Lock, events: Sequence[AuditEvent]) -> Lock:
        self.locks[lock.id] = lock
        self.events.extend(events)
        return lock

    def remove_lock(self, lock: Lock, events: Sequence[AuditEvent]) -> Lock:
        if self.locks[lock.id].removed_at is not None:
            raise InvalidTransition(f"lock {lock.id} was already removed")
        self.locks[lock.id] = lock
        self.events.extend(events)
        return lock

    def get_lock(self, lock_id: str) -> Lock:
        try:
            return self.locks[lock_id]
        except KeyError:
            raise NotFound(f"lock {lock_id} not found") from None

    def active_locks(
        self,
        now: datetime,
        *,
        users: Sequence[str] = (),
        groups: Sequence[str] = (),
        grants: Sequence[str] = (),
    ) -> list[Lock]:
        self.queries += 1
        wanted = {(LockKind.USER, u) for u in users} | {(LockKind.GROUP, g) for g in groups}
        wanted |= {(LockKind.GRANT, g) for g in grants}
        return [lk for lk in self.locks.values() if (lk.kind, lk.target) in wanted and lk.active(now)]

    def list_locks(self, *, include_removed: bool = False, limit: int = 1000) -> list[Lock]:
        found = [lk for lk in self.locks.values() if include_removed or lk.removed_at is None]
        return found[:limit]

    def due_locks(self, now: datetime, *, limit: int = 500) -> list[Lock]:
        return [
            lk
            for lk in self.locks.values()
            if lk.removed_at is None and lk.expires_at is not None and lk.expires_at <= now
        ][:limit]

    def people_in_group(self, group: str) -> list[str]:
        return sorted(user for user, groups in self.people.items() if group in groups)


#: The states ``due_for_expiry`` returns, in the order the SQL store merges its scans on a tie.
_DUE_STATES = (GrantState.ACTIVE, GrantState.APPROVED, GrantState.PENDING)


def _due_at(grant: Grant) -> datetime | None:
    if grant.state is GrantState.PENDING:
        return grant.pending_until
    return grant.expires_at if grant.state in _DUE_STATES else None


def _not_found(grant_id: GrantId) -> NotFound:
    return NotFound(f"grant {grant_id} not found", hint="List your grants with `kubejit grants`.")


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise InvalidInput(f"limit must be at least 1, not {limit}")
