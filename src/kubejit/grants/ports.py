"""The side effects the grant service needs, as small protocols; adapters live in store/ and clusters/."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from kubejit.grants.locks import Lock
from kubejit.grants.model import Grant, GrantState
from kubejit.ids import ClusterName, GrantId, PrincipalName


@dataclass(frozen=True)
class AuditEvent:
    """One audit record. ``details`` must never hold a secret (tokens are referenced by hash or id)."""

    action: str  # e.g. "grant.requested", "grant.activated", "token.minted"
    actor: str
    at: datetime
    outcome: str = "success"
    grant_id: GrantId | None = None
    subject: str | None = None
    cluster: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MintedToken:
    token: str
    expires_at: datetime
    #: The token's own id (jti) so audit and the cluster's audit log can be joined without the token.
    token_id: str


@dataclass(frozen=True)
class OwnedObject:
    """A labelled object kubejit created in a cluster, as the reconciler sees it."""

    kind: str  # ServiceAccount | RoleBinding | ClusterRoleBinding
    namespace: str | None
    name: str
    grant_id: GrantId


class GrantStore(Protocol):
    def add(self, grant: Grant, events: Sequence[AuditEvent]) -> Grant: ...

    def save(self, grant: Grant, events: Sequence[AuditEvent]) -> Grant:
        """Write the grant (if its version is unchanged since read) and its events in one transaction.

        Raises ``Conflict`` when another writer saved it first; returns the grant with version + 1.
        """
        ...

    def get(self, grant_id: GrantId) -> Grant: ...

    def list(
        self,
        *,
        requester: PrincipalName | None = None,
        states: frozenset[GrantState] | None = None,
        cluster: ClusterName | None = None,
        limit: int = 100,
    ) -> builtins.list[Grant]: ...

    def pending_for(
        self,
        approver: PrincipalName,
        groups: frozenset[str],
        *,
        approver_person: str | None = None,
        limit: int = 1000,
    ) -> builtins.list[Grant]:
        """Pending grants, newest first, with an approver group in ``groups`` and not requested by
        ``approver`` nor by another login of ``approver_person`` (filtered by the store, not after a
        limit)."""
        ...

    def needing_review(
        self,
        *,
        groups: frozenset[str] | None = None,
        excluding: PrincipalName | None = None,
        excluding_person: str | None = None,
        limit: int = 1000,
    ) -> builtins.list[Grant]:
        """Grants flagged "needs review" (break-glass, activated, no review yet), newest first: all of
        them (``groups`` None), or those with a reviewer group in ``groups`` that ``excluding`` (and
        another login of ``excluding_person``) does not hold, filtered by the store before the limit."""
        ...

    def due_for_expiry(self, now: datetime, *, limit: int = 500) -> builtins.list[Grant]:
        """Active grants with expires_at <= now, and pending ones past pending_until (index scans)."""
        ...

    def count_by_state(self) -> dict[str, int]: ...

    def record_token(
        self,
        grant_id: GrantId,
        *,
        token_id: str,
        token_sha256: str,
        expires_at: datetime,
        events: Sequence[AuditEvent] = (),
    ) -> None:
        """Keep only the hash and the id of a minted token, with its audit events, in one transaction."""
        ...

    def get_with_tokens(self, grant_id: GrantId) -> tuple[Grant, int]:
        """The grant and how many tokens were minted for it so far (a later one is a refresh), in one read."""
        ...


class AuditLog(Protocol):
    """The audit log, for events that change no grant (``store.audit_store.SqlAuditStore``).

    A grant change's events go with it, in the same transaction, through ``GrantStore``.
    """

    def record(self, events: Sequence[AuditEvent]) -> None:
        """Audit events that change no grant (token mint, refused request, auth failure)."""
        ...


class ClusterAdapter(Protocol):
    """One Kubernetes cluster, as the grant service uses it. Every call is idempotent."""

    name: ClusterName
    #: False in jwt mode: a grant is its bindings only (no ServiceAccount to expect or delete).
    uses_service_accounts: bool

    def ensure_grant_objects(self, grant: Grant) -> None:
        """Create (or find) the grant's ServiceAccount and its bindings."""
        ...

    def delete_grant_objects(self, grant_id: GrantId) -> None:
        """Delete the grant's bindings, then its ServiceAccount; missing objects are fine."""
        ...

    def mint_token(self, grant: Grant, *, expiration_seconds: int) -> MintedToken: ...

    def list_owned(self) -> list[OwnedObject]: ...


class LockStore(Protocol):
    """Where locks live (``store.locks.SqlLockStore``); each write carries its audit events."""

    def add_lock(self, lock: Lock, events: Sequence[AuditEvent]) -> Lock: ...

    def remove_lock(self, lock: Lock, events: Sequence[AuditEvent]) -> Lock:
        """Save ``lock`` as removed if it is still in force; raises ``InvalidTransition`` if it is not."""
        ...

    def get_lock(self, lock_id: str) -> Lock: ...

    def active_locks(
        self,
        now: datetime,
        *,
        users: Sequence[str] = (),
        groups: Sequence[str] = (),
        grants: Sequence[str] = (),
    ) -> builtins.list[Lock]:
        """Locks in force on any of these users, groups or grants (one indexed query)."""
        ...

    def list_locks(self, *, include_removed: bool = False, limit: int = 1000) -> builtins.list[Lock]: ...

    def due_locks(self, now: datetime, *, limit: int = 500) -> builtins.list[Lock]:
        """Locks past their end but not yet marked removed (the sweeper records ``lock.expired``)."""
        ...

    def people_in_group(self, group: str) -> builtins.list[str]:
        """Everyone whose last-seen groups include ``group`` (people table): whose grants a group lock ends."""
        ...
