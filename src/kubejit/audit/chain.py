"""The audit hash chain, as pure functions: each event's hash covers its fields and the previous hash.

Editing a stored event changes its hash; deleting one leaves a gap in ``seq``; rewriting a row's
hashes breaks the next row's link. What a chain cannot show alone is a cut tail: compare
``VerifyResult.head_hash`` with a copy shipped elsewhere (a sink) to catch that.
Standard library only, so it can be audited and reused without the rest of kubejit.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _json_str
from typing import Any, Final, Literal, NamedTuple

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


#: Any character ``encode_basestring_ascii`` would escape: outside printable ASCII, or " or \\.
_NEEDS_ESCAPE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def payload_json(
    seq: int,
    event_id: str,
    at: str,
    action: str,
    actor: str,
    outcome: str,
    grant_id: str | None,
    subject: str | None,
    cluster: str | None,
    details_json: str,
) -> str:
    """``canonical_json(payload)`` spelled out by hand from stored columns, for the hot paths.

    ``at`` is already RFC 3339 and ``details_json`` already canonical (as stored), so nothing is
    parsed or re-encoded: the result is byte-identical to ``canonical_json`` (a test checks it),
    and appends and verification run several times faster.
    """
    # Keys in sorted order, exactly as json.dumps(sort_keys=True, separators=(",", ":")) writes them.
    # Nearly every value is plain ASCII: one regex search over all of them lets the common case
    # quote instead of calling the encoder eight times (the single largest cost of verification).
    if _NEEDS_ESCAPE.search(f"{event_id}{at}{action}{actor}{outcome}{grant_id}{subject}{cluster}"):
        return (
            f'{{"action":{_json_str(action)},"actor":{_json_str(actor)},"at":{_json_str(at)},'
            f'"cluster":{"null" if cluster is None else _json_str(cluster)},"details":{details_json},'
            f'"event_id":{_json_str(event_id)},'
            f'"grant_id":{"null" if grant_id is None else _json_str(grant_id)},'
            f'"outcome":{_json_str(outcome)},"seq":{int(seq)},'
            f'"subject":{"null" if subject is None else _json_str(subject)}}}'
        )
    q_cluster = "null" if cluster is None else '"' + cluster + '"'
    q_grant = "null" if grant_id is None else '"' + grant_id + '"'
    q_subject = "null" if subject is None else '"' + subject + '"'
    return (
        f'{{"action":"{action}","actor":"{actor}","at":"{at}","cluster":{q_cluster},"details":{details_json},'
        f'"event_id":"{event_id}","grant_id":{q_grant},"outcome":"{outcome}","seq":{int(seq)},'
        f'"subject":{q_subject}}}'
    )


def row_hash(prev_hash: str, payload: str) -> str:
    """The hash of a row whose canonical payload is already spelled (see ``payload_json``)."""
    return hashlib.sha256((prev_hash + payload).encode()).hexdigest()


class Sealed(NamedTuple):
    """A linked event and the two column spellings its hash was computed from (for the store)."""

    event: StoredEvent
    at: str
    details_json: str


def seal_row(event: AuditEvent, *, seq: int, event_id: str, prev_hash: str) -> tuple[str, str, str]:
    """The hot path of every append: (RFC 3339 time, canonical details, hash), each encoded once.

    The store writes exactly the text that was hashed, and builds nothing else.
    """
    at = rfc3339(event.at)  # refuses naive times before anything is hashed
    details_json = canonical_json(event.details)
    if not details_json.startswith("{"):
        raise TypeError("audit event details must be a dict")
    payload = payload_json(
        seq, event_id, at, event.action, event.actor, event.outcome,
        event.grant_id, event.subject, event.cluster, details_json,
    )  # fmt: skip
    return at, details_json, row_hash(prev_hash, payload)


def seal(event: AuditEvent, *, seq: int, event_id: str, prev_hash: str) -> Sealed:
    """Link ``event`` and keep the RFC 3339 time and canonical details text the hash covers."""
    at, details_json, digest = seal_row(event, seq=seq, event_id=event_id, prev_hash=prev_hash)
    stored = StoredEvent(
        seq=seq,
        event_id=event_id,
        action=event.action,
        actor=event.actor,
        at=event.at.astimezone(UTC),
        outcome=event.outcome,
        grant_id=event.grant_id,
        subject=event.subject,
        cluster=event.cluster,
        details=json.loads(details_json),
        prev_hash=prev_hash,
        hash=digest,
    )
    return Sealed(stored, at, details_json)


def link(event: AuditEvent, *, seq: int, event_id: str, prev_hash: str) -> StoredEvent:
    """The stored form of ``event`` at position ``seq`` after ``prev_hash``, hash included.

    ``details`` are normalised through canonical JSON, so the returned event equals the one read
    back from storage and re-hashes to the same value.
    """
    return seal(event, seq=seq, event_id=event_id, prev_hash=prev_hash).event


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


#: A stored row as plain values, in this order: seq, event_id, at (RFC 3339), action, actor, outcome,
#: grant_id, subject, cluster, details (canonical JSON text), prev_hash, hash.
RawRow = tuple[int, str, str, str, str, str, str | None, str | None, str | None, str, str, str]


def verify_rows(rows: Iterable[RawRow], *, after_seq: int = 0, prev_hash: str = GENESIS) -> VerifyResult:
    """``verify_chain`` over raw rows: the same checks, in the same order, with the same result.

    It hashes the stored ``details`` text as it is instead of parsing it, so a row whose JSON was
    rewritten into an equivalent but non-canonical spelling is reported as edited, too.
    """
    last_seq, head, checked = after_seq, prev_hash, 0
    sha256 = hashlib.sha256
    for seq, event_id, at, action, actor, outcome, grant_id, subject, cluster, details, prev, digest in rows:
        checked += 1
        problem: Problem | None = None
        if seq != last_seq + 1:
            problem = SEQ_GAP
        elif prev != head:
            problem = BROKEN_LINK
        else:
            payload = payload_json(
                seq, event_id, at, action, actor, outcome, grant_id, subject, cluster, details
            )
            if sha256((prev + payload).encode()).hexdigest() != digest:
                problem = EDITED
        if problem is not None:
            return VerifyResult(False, checked, last_seq, head, first_bad_seq=seq, problem=problem)
        last_seq, head = seq, digest
    return VerifyResult(True, checked, last_seq, head)
