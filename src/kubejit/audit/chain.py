"""The audit hash chain, as pure functions: each event's hash covers its fields and the previous hash.

Editing a stored event changes its hash; deleting one leaves a gap in ``seq``; rewriting a row's
hashes breaks the next row's link. What a chain cannot show alone is a cut tail: compare
``VerifyResult.head_hash`` with a copy shipped elsewhere (a sink) to catch that.
Standard library only, so it can be audited and reused without the rest of kubejit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

from kubejit.audit.event import StoredEvent, rfc3339
from kubejit.grants.ports import AuditEvent

#: The ``prev_hash`` of the first event.
GENESIS: Final = "0" * 64

Problem = Literal["edited", "deleted/reordered (seq gap)", "broken link"]
EDITED: Final[Problem] = "edited"
SEQ_GAP: Final[Problem] = "deleted/reordered (seq gap)"
BROKEN_LINK: Final[Problem] = "broken link"


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(
        f"{type(value).__name__} cannot be written to the audit log; "
        "use str, int, float, bool, None, datetime, list or dict"
    )


def canonical_json(obj: Any) -> str:
    """One byte-exact JSON spelling: sorted keys, no whitespace, ASCII, datetimes as RFC 3339 UTC."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=_encode
    )


def event_hash(prev_hash: str, payload: Mapping[str, Any]) -> str:
    """sha256 hex of the previous hash followed by the payload's canonical JSON."""
    return hashlib.sha256((prev_hash + canonical_json(payload)).encode("ascii")).hexdigest()


def link(event: AuditEvent, *, seq: int, event_id: str, prev_hash: str) -> StoredEvent:
    """The stored form of ``event`` at position ``seq`` after ``prev_hash``, hash included.

    ``details`` are normalised through canonical JSON, so the returned event equals the one read
    back from storage and re-hashes to the same value.
    """
    rfc3339(event.at)  # refuse naive times before anything is hashed
    details = json.loads(canonical_json(event.details))
    if not isinstance(details, dict):
        raise TypeError("audit event details must be a dict")
    unsealed = StoredEvent(
        seq=seq,
        event_id=event_id,
        action=event.action,
        actor=event.actor,
        at=event.at.astimezone(UTC),
        outcome=event.outcome,
        grant_id=event.grant_id,
        subject=event.subject,
        cluster=event.cluster,
        details=details,
        prev_hash=prev_hash,
    )
    return replace(unsealed, hash=event_hash(prev_hash, unsealed.payload()))


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    #: Events examined, the bad one included.
    checked: int
    #: The last event found good, and its hash: an anchor to compare with a copy kept elsewhere.
    last_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: Problem | None = None


def verify_chain(
    events: Iterable[StoredEvent], *, after_seq: int = 0, prev_hash: str = GENESIS
) -> VerifyResult:
    """Check events in stored order, stopping at the first bad one. O(n) time, constant memory.

    ``after_seq``/``prev_hash`` resume from a checkpoint (the defaults start at the genesis).
    Checks run in this order, so the label names the first thing that went wrong: the seq must
    follow the previous one, the prev_hash must be the previous hash, the hash must match the row.
    """
    last_seq, head, checked = after_seq, prev_hash, 0
    for event in events:
        checked += 1
        problem: Problem | None = None
        if event.seq != last_seq + 1:
            problem = SEQ_GAP
        elif event.prev_hash != head:
            problem = BROKEN_LINK
        elif event_hash(event.prev_hash, event.payload()) != event.hash:
            problem = EDITED
        if problem is not None:
            return VerifyResult(False, checked, last_seq, head, first_bad_seq=event.seq, problem=problem)
        last_seq, head = event.seq, event.hash
    return VerifyResult(True, checked, last_seq, head)
