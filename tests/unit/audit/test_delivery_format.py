"""Pure formatting of deliveries: RFC 5424 + octet counting, HMAC signatures, HEC bodies, backoff."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from kubejit.audit.delivery.backoff import retry_delay
from kubejit.audit.delivery.payload import event_json
from kubejit.audit.delivery.rfc5424 import format_message, header_field, octet_counted, sd_param
from kubejit.audit.delivery.signing import sign, verify
from kubejit.audit.delivery.sinks.http import hec_body, webhook_body
from kubejit.audit.event import StoredEvent
from kubejit.ids import GrantId

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)
# RFC 5424 section 6 (ABNF), for our messages: PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP
# PROCID SP MSGID SP STRUCTURED-DATA SP MSG.
RFC5424 = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (?P<host>[!-~]{1,255}) "
    r'(?P<app>[!-~]{1,48}) - (?P<msgid>[!-~]{1,32}) \[kubejit@32473 seq="(?P<seq>\d+)" '
    r'eventId="(?P<id>[^"]+)"\] (?P<msg>\{.*\})$'
)


def event(seq: int = 7, **changes: object) -> StoredEvent:
    fields: dict[str, object] = {
        "seq": seq,
        "event_id": f"e{seq:031d}",
        "action": "grant.activated",
        "actor": "kubejit",
        "at": AT,
        "outcome": "success",
        "grant_id": GrantId("g123"),
        "subject": "alice",
        "cluster": "dev",
        "details": {"reason": 'fix prod \u00e9\n] "quoted"', "namespaces": ["a"]},
        "prev_hash": "0" * 64,
        "hash": "1" * 64,
    }
    fields.update(changes)
    return StoredEvent(**fields)  # type: ignore[arg-type]


def test_syslog_message_is_rfc5424_with_ascii_json_body() -> None:
    e = event()
    message = format_message(e, event_json(e, "kubejit"), facility=10, hostname="broker-1")
    match = RFC5424.match(message)
    assert match, message
    assert int(match["pri"]) == 10 * 8 + 5  # authpriv.notice
    assert match["msgid"] == "grant.activated" and match["seq"] == "7" and match["id"] == e.event_id
    assert message.isascii() and "\n" not in message
    assert json.loads(match["msg"])["details"]["reason"] == 'fix prod \u00e9\n] "quoted"'


def test_refusals_are_warnings_and_header_fields_are_sanitised() -> None:
    e = event(outcome="denied", action="grant.request denied with a very long name beyond 32")
    match = RFC5424.match(format_message(e, "{}", facility=16, hostname="host name\u00e9"))
    assert match
    assert int(match["pri"]) == 16 * 8 + 4  # local0.warning
    assert match["host"] == "host_name_" and len(match["msgid"]) == 32 and " " not in match["msgid"]
    assert header_field("", limit=5) == "-"
    assert sd_param('a"b]c\\') == 'a\\"b\\]c\\\\'


def test_octet_counting_counts_bytes_not_characters() -> None:
    assert octet_counted("abc") == b"3 abc"
    assert octet_counted("\u00e9") == b"2 \xc3\xa9"


def test_signature_verifies_and_any_change_breaks_it() -> None:
    key, body = b"k" * 32, b'{"events":[]}'
    signature = sign(key, timestamp=1_700_000_000, body=body)
    assert signature.startswith("v1=") and len(signature) == 3 + 64
    ok = {"timestamp": "1700000000", "signature": signature, "body": body, "now": 1_700_000_010}
    assert verify(key, **ok)  # type: ignore[arg-type]
    assert verify(key, **{**ok, "signature": f"v0=abc, {signature}"})  # type: ignore[arg-type]
    assert not verify(b"other key", **ok)  # type: ignore[arg-type]
    assert not verify(key, **{**ok, "body": body + b" "})  # type: ignore[arg-type]
    assert not verify(key, **{**ok, "timestamp": "1700000001"})  # type: ignore[arg-type]
    assert not verify(key, **{**ok, "timestamp": "soon"})  # type: ignore[arg-type]
    assert not verify(key, **{**ok, "now": 1_700_000_000 + 301})  # type: ignore[arg-type]


def test_webhook_and_hec_bodies_carry_event_ids_in_order() -> None:
    events = [event(1), event(2)]
    ids = [events[0].event_id, events[1].event_id]
    assert [e["event_id"] for e in json.loads(webhook_body(events, "kubejit"))["events"]] == ids
    ocsf = json.loads(webhook_body(events))["events"]  # OCSF by default: the id is metadata.uid
    assert [e["metadata"]["uid"] for e in ocsf] == ids and ocsf[0]["unmapped"]["kubejit"]["seq"] == 1
    lines = hec_body(events, host="b1", source="kubejit", sourcetype="kubejit:audit", index=None).splitlines()
    entries = [json.loads(line) for line in lines]
    assert [x["fields"]["seq"] for x in entries] == [1, 2]
    assert entries[0]["time"] == pytest.approx(AT.timestamp()) and "index" not in entries[0]
    assert entries[0]["event"]["metadata"]["uid"] == events[0].event_id
    indexed = hec_body(events[:1], host="b1", source="s", sourcetype="t", index="audit")
    assert json.loads(indexed)["index"] == "audit"


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    low = [retry_delay(n, initial=1, maximum=60, uniform=lambda a, b: a) for n in range(1, 9)]
    high = [retry_delay(n, initial=1, maximum=60, uniform=lambda a, b: b) for n in range(1, 9)]
    assert high == [1, 2, 4, 8, 16, 32, 60, 60]
    assert low == [h / 2 for h in high]
    assert retry_delay(10_000, initial=1, maximum=300, uniform=lambda a, b: b) == 300
    with pytest.raises(ValueError, match="at least 1"):
        retry_delay(0, initial=1, maximum=2)
