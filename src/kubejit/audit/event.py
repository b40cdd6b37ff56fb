"""The audit event as stored: an ``AuditEvent`` plus its place in the hash chain.

``seq`` is gapless and assigned by the writer that holds the chain's tail, so a missing number
means a missing row. ``payload()`` names exactly the fields the hash covers: everything except
the hashes themselves, including ``seq`` and ``event_id``, so neither can be rewritten unseen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubejit.grants.ports import AuditEvent
from kubejit.ids import GrantId


def rfc3339(at: datetime) -> str:
    """RFC 3339 in UTC with microseconds, the one spelling of time that is hashed and shown."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: audit times must be timezone-aware (UTC)")
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    event_id: str
    action: str
    actor: str
    at: datetime
    outcome: str
    grant_id: GrantId | None
    subject: str | None
    cluster: str | None
    details: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = ""
    hash: str = ""

    def payload(self) -> dict[str, Any]:
        """The hashed fields, as plain values (``canonical_json`` encodes the datetime)."""
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "at": self.at,
            "action": self.action,
            "actor": self.actor,
            "outcome": self.outcome,
            "grant_id": self.grant_id,
            "subject": self.subject,
            "cluster": self.cluster,
            "details": self.details,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``at`` as RFC 3339 UTC) for the API, exports and sinks."""
        return {**self.payload(), "at": rfc3339(self.at), "prev_hash": self.prev_hash, "hash": self.hash}

    @property
    def event(self) -> AuditEvent:
        return AuditEvent(
            action=self.action,
            actor=self.actor,
            at=self.at,
            outcome=self.outcome,
            grant_id=self.grant_id,
            subject=self.subject,
            cluster=self.cluster,
            details=self.details,
        )
