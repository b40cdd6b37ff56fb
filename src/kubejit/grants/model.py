"""A grant and its states, as plain frozen data.

pending ──approve(N)──▶ approved ──activate──▶ active ──▶ expired | revoked
   │                       │                     │
   ├──deny──▶ denied       └──fail──▶ failed     └──(cluster error)── stays active, retried
   └──timeout──▶ expired (never activated)
(policy "auto" skips pending: requested → approved → active in one call)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from kubejit.ids import ClusterName, GrantId, NamespaceName, PrincipalName
from kubejit.policy.model import RoleRef


class GrantState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    DENIED = "denied"
    FAILED = "failed"

    @property
    def ended(self) -> bool:
        return self in ENDED_STATES


ENDED_STATES = frozenset({GrantState.EXPIRED, GrantState.REVOKED, GrantState.DENIED, GrantState.FAILED})
#: States in which kubejit objects may exist in the cluster (the reconciler's desired set).
LIVE_STATES = frozenset({GrantState.APPROVED, GrantState.ACTIVE})
#: The actor of what the broker does by itself (expiry, activation, cleanup, lock expiry).
SYSTEM_ACTOR = "kubejit"


@dataclass(frozen=True)
class Approval:
    approver: PrincipalName
    at: datetime
    comment: str = ""
    #: The approver's person (``Principal.person``): one human counts once, whichever login approved.
    person: str | None = None


@dataclass(frozen=True)
class Review:
    """The post-incident review of a break-glass grant: who looked at what was done, and what they found."""

    reviewer: PrincipalName
    at: datetime
    comment: str
    person: str | None = None


@dataclass(frozen=True)
class Grant:
    id: GrantId
    requester: PrincipalName
    cluster: ClusterName
    namespaces: tuple[NamespaceName, ...]
    role: RoleRef
    duration: timedelta
    reason: str
    ticket: str | None
    state: GrantState
    rule: str
    created_at: datetime
    #: A pending request that nobody decides by then expires.
    pending_until: datetime
    approvals_required: int = 0
    approver_groups: frozenset[str] = frozenset()
    approvals: tuple[Approval, ...] = ()
    break_glass: bool = False
    extendable: bool = False
    max_duration: timedelta = timedelta(0)
    activated_at: datetime | None = None
    #: Durations count from activation: set when the grant becomes active.
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: PrincipalName | None = None
    end_reason: str = ""
    #: Optimistic concurrency: bumped on every save, so two replicas never both apply a transition.
    version: int = 0
    #: The requester's person (``Principal.person``), so another login of theirs cannot approve.
    #: Stored in ``grants.requester_person`` (migration 0004); None for logins without a verified email.
    requester_person: str | None = None
    #: Break-glass only: groups whose members (or an admin) review the grant's use afterwards.
    reviewer_groups: frozenset[str] = frozenset()
    #: Set when a break-glass grant activates; cleared when its review is recorded (migration 0005).
    needs_review: bool = False
    review: Review | None = None

    @property
    def service_account(self) -> str:
        return f"kubejit-{self.id}"

    def time_left(self, now: datetime) -> timedelta:
        if self.expires_at is None:
            return self.duration
        return max(self.expires_at - now, timedelta(0))
