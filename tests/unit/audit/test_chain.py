"""The audit hash chain as pure functions: encoding, hashing, linking, verification."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from kubejit.audit.chain import (
    BROKEN_LINK,
    EDITED,
    GENESIS,
    SEQ_GAP,
    canonical_json,
    event_hash,
    link,
    verify_chain,
)
from kubejit.audit.event import StoredEvent, rfc3339
from kubejit.grants.ports import AuditEvent
from kubejit.ids import GrantId

pytestmark = pytest.mark.unit

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def chain(n: int) -> list[StoredEvent]:
    events, prev = [], GENESIS
    for seq in range(1, n + 1):
        stored = link(
            AuditEvent(action=f"a{seq}", actor="dev:alice", at=AT, details={"n": seq}),
            seq=seq,
            event_id=f"{seq:032x}",
            prev_hash=prev,
        )
        events.append(stored)
        prev = stored.hash
    return events


# -- canonical JSON --------------------------------------------------------------------------------
def test_canonical_json_is_sorted_compact_and_ascii() -> None:
    assert canonical_json({"b": 1, "a": [True, None, "é"], "c": {"z": 1.5, "y": "x"}}) == (
        '{"a":[true,null,"\\u00e9"],"b":1,"c":{"y":"x","z":1.5}}'
    )


def test_canonical_json_writes_times_as_rfc3339_utc_with_microseconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert canonical_json({"t": datetime(2026, 3, 1, 14, 0, 0, 5, tzinfo=plus_two)}) == (
        '{"t":"2026-03-01T12:00:00.000005Z"}'
    )
    assert rfc3339(AT) == "2026-03-01T12:00:00.000000Z"


def test_canonical_json_sorts_sets_and_keeps_tuples_as_lists() -> None:
    assert canonical_json({"g": frozenset({"b", "a"}), "t": ("x", 1)}) == '{"g":["a","b"],"t":["x",1]}'


@pytest.mark.parametrize(
    "bad",
    [
        {"t": datetime(2026, 1, 1)},  # naive: which zone?
        {"x": math.nan},
        {"x": Decimal("1.5")},
        {"x": b"bytes"},
    ],
)
def test_canonical_json_refuses_what_it_cannot_spell_one_way(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        canonical_json(bad)


# -- hashing and linking ---------------------------------------------------------------------------
def test_event_hash_is_sha256_of_prev_hash_and_canonical_payload() -> None:
    expected = hashlib.sha256((GENESIS + '{"a":1,"b":"x"}').encode()).hexdigest()
    assert event_hash(GENESIS, {"b": "x", "a": 1}) == expected


def test_link_hashes_every_field_and_normalises_details() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = AuditEvent(
        action="grant.approved",
        actor="dev:bob",
        at=datetime(2026, 3, 1, 14, 0, tzinfo=plus_two),
        outcome="success",
        grant_id=GrantId("g1"),
        subject="dev:alice",
        cluster="prod",
        details={"when": AT, "groups": frozenset({"sre"})},
    )
    stored = link(event, seq=7, event_id="e" * 32, prev_hash="a" * 64)

    assert stored.at == AT and stored.at.tzinfo is UTC
    assert stored.details == {"when": "2026-03-01T12:00:00.000000Z", "groups": ["sre"]}
    assert stored.hash == event_hash("a" * 64, stored.payload())
    assert stored.event == replace(event, at=AT, details=stored.details)
    edits: list[dict[str, Any]] = [
        {"seq": 8},
        {"event_id": "f" * 32},
        {"actor": "x"},
        {"details": {}},
        {"grant_id": None},
        {"at": AT + timedelta(microseconds=1)},
    ]
    for edit in edits:
        changed = replace(stored, **edit)
        assert event_hash(changed.prev_hash, changed.payload()) != stored.hash, edit


def test_link_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        link(
            AuditEvent(action="x", actor="y", at=datetime(2026, 1, 1)), seq=1, event_id="e", prev_hash=GENESIS
        )


def test_to_dict_is_json_ready() -> None:
    stored = chain(1)[0]
    assert stored.to_dict() == {
        "seq": 1,
        "event_id": f"{1:032x}",
        "at": "2026-03-01T12:00:00.000000Z",
        "action": "a1",
        "actor": "dev:alice",
        "outcome": "success",
        "grant_id": None,
        "subject": None,
        "cluster": None,
        "details": {"n": 1},
        "prev_hash": GENESIS,
        "hash": stored.hash,
    }


# -- verification ----------------------------------------------------------------------------------
def test_an_intact_chain_verifies() -> None:
    events = chain(5)
    result = verify_chain(events)
    assert (result.ok, result.checked, result.last_seq, result.head_hash) == (True, 5, 5, events[-1].hash)
    assert result.first_bad_seq is None and result.problem is None


def test_an_empty_chain_verifies_as_the_genesis() -> None:
    assert verify_chain([]) == verify_chain(iter(()))
    assert verify_chain([]).head_hash == GENESIS


def test_an_edited_event_is_found() -> None:
    events = chain(5)
    events[2] = replace(events[2], actor="dev:mallory")
    result = verify_chain(events)
    assert (result.ok, result.first_bad_seq, result.problem, result.last_seq) == (False, 3, EDITED, 2)
    assert result.head_hash == events[1].hash


def test_a_deleted_event_is_a_seq_gap() -> None:
    events = chain(5)
    del events[1]
    assert (verify_chain(events).first_bad_seq, verify_chain(events).problem) == (3, SEQ_GAP)
    assert verify_chain(chain(3)[1:]).problem == SEQ_GAP  # the first one deleted


def test_reordered_events_are_found() -> None:
    events = chain(5)
    events[1], events[2] = events[2], events[1]
    result = verify_chain(events)
    assert (result.first_bad_seq, result.problem) == (3, SEQ_GAP)


def test_renumbered_events_break_a_link() -> None:
    events = chain(5)
    # Swapped and renumbered so the seqs look right: the links still give it away.
    events[1], events[2] = replace(events[2], seq=2), replace(events[1], seq=3)
    result = verify_chain(events)
    assert (result.first_bad_seq, result.problem) == (2, BROKEN_LINK)


def test_a_rewritten_hash_breaks_the_next_link() -> None:
    events = chain(5)
    forged = replace(events[2], actor="dev:mallory")
    events[2] = replace(forged, hash=event_hash(forged.prev_hash, forged.payload()))
    result = verify_chain(events)
    assert (result.first_bad_seq, result.problem) == (4, BROKEN_LINK)


def test_verification_resumes_from_a_checkpoint() -> None:
    events = chain(6)
    assert verify_chain(events[3:], after_seq=3, prev_hash=events[2].hash).ok
    assert verify_chain(events[3:], after_seq=3).problem == BROKEN_LINK


def test_verification_streams_and_stops_at_the_first_bad_event() -> None:
    consumed = 0

    def stream() -> Iterator[StoredEvent]:
        nonlocal consumed
        prev = GENESIS
        for seq in range(1, 1_000_000):
            event = link(AuditEvent(action="a", actor="b", at=AT), seq=seq, event_id=str(seq), prev_hash=prev)
            consumed += 1
            yield replace(event, actor="forged") if seq == 50 else event
            prev = event.hash

    result = verify_chain(stream())
    assert (result.first_bad_seq, result.problem, result.checked) == (50, EDITED, 50)
    assert consumed == 50


# -- the fast paths: hand-spelled payloads and raw-row verification ------------------------------
def test_payload_json_is_byte_identical_to_canonical_json() -> None:
    from kubejit.audit.chain import payload_json

    for event in [*chain(3), link(
        AuditEvent(action="x\u00e9\"", actor="a\\b", at=AT, grant_id=GrantId("g1"), subject="s", cluster="c",
                   details={"z": [1, None, "\u2603"], "a": {"b": True}}),
        seq=4, event_id="f" * 32, prev_hash=GENESIS,
    )]:  # fmt: skip
        spelled = payload_json(
            seq=event.seq, event_id=event.event_id, at=rfc3339(event.at), action=event.action,
            actor=event.actor, outcome=event.outcome, grant_id=event.grant_id, subject=event.subject,
            cluster=event.cluster, details_json=canonical_json(event.details),
        )  # fmt: skip
        assert spelled == canonical_json(event.payload())
        assert hashlib.sha256((event.prev_hash + spelled).encode()).hexdigest() == event.hash


def _raw(e: StoredEvent) -> tuple[Any, ...]:
    return (
        e.seq, e.event_id, rfc3339(e.at), e.action, e.actor, e.outcome, e.grant_id, e.subject, e.cluster,
        canonical_json(e.details), e.prev_hash, e.hash,
    )  # fmt: skip


@pytest.mark.parametrize(
    "tamper",
    [
        lambda rows: rows,
        lambda rows: rows[:1] + rows[2:],
        lambda rows: [rows[0], rows[2], rows[1], *rows[3:]],
        lambda rows: [rows[0], (*rows[1][:4], "mallory", *rows[1][5:]), *rows[2:]],
        lambda rows: [rows[0], (*rows[1][:9], '{"n": 2}', *rows[1][10:]), *rows[2:]],  # same JSON, respelled
    ],
    ids=["intact", "deleted", "swapped", "edited", "respelled"],
)
def test_verify_rows_agrees_with_verify_chain(tamper: Any) -> None:
    from kubejit.audit.chain import verify_rows

    events = chain(5)
    rows = tamper([_raw(e) for e in events])
    fast = verify_rows(rows)
    by_seq = {e.seq: e for e in events}
    if fast.ok or fast.problem != EDITED or rows[1][9] == canonical_json(by_seq[rows[1][0]].details):
        slow_events = [
            by_seq[r[0]] if r[4] != "mallory" else replace(by_seq[r[0]], actor="mallory") for r in rows
        ]
        assert fast == verify_chain(slow_events)
    else:  # a respelled-but-equal details text: only the raw check can see it
        assert (fast.first_bad_seq, fast.problem) == (2, EDITED)


@pytest.mark.parametrize("odd", ["plain", "\x7f", "\x1f", "\\", '"', "\u00e9", "\u2028", "~ !#[]", ""])
def test_the_plain_ascii_fast_path_and_the_escaping_path_agree_with_json(odd: str) -> None:
    from kubejit.audit.chain import payload_json

    fields: dict[str, Any] = {
        "action": f"a{odd}",
        "actor": odd,
        "outcome": "success",
        "grant_id": None,
        "subject": odd,
        "cluster": odd,
    }
    spelled = payload_json(seq=1, event_id=odd, at="2026-03-01T12:00:00.000000Z", details_json="{}", **fields)
    expected = {**fields, "seq": 1, "event_id": odd, "at": "2026-03-01T12:00:00.000000Z", "details": {}}
    assert spelled == canonical_json(expected)
