"""Who held which grant, when, why and with whose approval, rebuilt from the audit trail (pure).

Built from the chained events rather than the grants table: the trail is what an auditor trusts
(it is verified), and it keeps ended grants exactly as they were. Token events add the ids the
API server's own audit log records (``jti``, ServiceAccount uid) so requests can be joined back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from kubejit.audit.event import StoredEvent, rfc3339

#: Events that describe grants and their tokens: what `correlate` and `who` read from the store.
GRANT_ACTIONS = (
    "grant.requested",
    "grant.approval_recorded",
    "grant.approved",
    "grant.activated",
    "grant.extended",
    "grant.denied",
    "grant.revoked",
    "grant.expired",
    "grant.failed",
    "token.minted",
    "token.refreshed",
)
_ENDS = {"grant.denied", "grant.revoked", "grant.expired", "grant.failed"}
_APPROVALS = {"grant.approval_recorded", "grant.approved"}


@dataclass
class GrantRecord:
    grant_id: str
    person: str = ""
    cluster: str = ""
    namespaces: list[str] = field(default_factory=list)
    role: str = ""
    reason: str = ""
    ticket: str | None = None
    break_glass: bool = False
    approvers: list[str] = field(default_factory=list)
    activated_at: datetime | None = None
    expires_at: str | None = None
    ended_at: datetime | None = None
    ended_by: str = ""
    token_ids: set[str] = field(default_factory=set)
    service_account_uids: set[str] = field(default_factory=set)

    @property
    def service_account(self) -> str:
        return f"kubejit-{self.grant_id}"

    def held_during(self, since: datetime, until: datetime) -> bool:
        """Active at some moment in [since, until)."""
        if self.activated_at is None or self.activated_at >= until:
            return False
        return self.ended_at is None or self.ended_at > since

    def to_dict(self) -> dict[str, object]:
        return {
            "grant_id": self.grant_id,
            "person": self.person,
            "cluster": self.cluster,
            "namespaces": self.namespaces,
            "role": self.role,
            "reason": self.reason,
            "ticket": self.ticket,
            "break_glass": self.break_glass,
            "approvers": self.approvers,
            "activated_at": rfc3339(self.activated_at) if self.activated_at else None,
            "ended_at": rfc3339(self.ended_at) if self.ended_at else None,
            "ended_by": self.ended_by or None,
        }


def grant_records(events: Iterable[StoredEvent]) -> dict[str, GrantRecord]:
    """One record per grant named by ``events`` (in chain order); later events refine earlier ones."""
    records: dict[str, GrantRecord] = {}
    for event in events:
        if event.grant_id is None:
            continue
        record = records.setdefault(event.grant_id, GrantRecord(event.grant_id))
        _apply(record, event)
    return records


def _apply(record: GrantRecord, event: StoredEvent) -> None:
    d = event.details
    record.person = event.subject or record.person
    record.cluster = event.cluster or record.cluster
    if isinstance(d.get("namespaces"), list):
        record.namespaces = [str(n) for n in d["namespaces"]]
    record.role = str(d.get("role") or record.role)
    record.reason = str(d.get("reason") or record.reason)
    record.ticket = d.get("ticket") or record.ticket
    record.break_glass = bool(d.get("break_glass", record.break_glass))
    if isinstance(d.get("approvers"), list):
        record.approvers = [str(a) for a in d["approvers"]]
    if event.action in _APPROVALS and event.actor not in record.approvers:
        record.approvers.append(event.actor)
    if event.action == "grant.activated":
        record.activated_at = event.at
    if d.get("expires_at"):
        record.expires_at = str(d["expires_at"])
    if event.action in _ENDS and record.ended_at is None:
        record.ended_at, record.ended_by = event.at, event.actor
    if event.action in ("token.minted", "token.refreshed"):
        if d.get("token_id"):
            record.token_ids.add(str(d["token_id"]))
        if d.get("service_account_uid"):
            record.service_account_uids.add(str(d["service_account_uid"]))


def who_had_access(
    records: Iterable[GrantRecord], *, cluster: str, namespace: str, since: datetime, until: datetime
) -> list[GrantRecord]:
    """Grants active in ``namespace`` of ``cluster`` at some moment of [since, until), earliest first."""
    found = [
        r
        for r in records
        if r.cluster == cluster and namespace in r.namespaces and r.held_during(since, until)
    ]
    return sorted(found, key=lambda r: (r.activated_at or since, r.grant_id))
