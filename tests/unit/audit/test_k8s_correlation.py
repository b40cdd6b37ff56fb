"""Joining kube-apiserver audit lines to grants: by jti, by ServiceAccount uid, by name; never guessing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubejit.audit.access_history import grant_records, who_had_access
from kubejit.audit.chain import GENESIS, link
from kubejit.audit.event import StoredEvent
from kubejit.audit.k8s_correlation import GrantIndex, MalformedAuditLine, correlate, parse_audit_log
from kubejit.grants.ports import AuditEvent
from kubejit.ids import GrantId

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def trail() -> list[StoredEvent]:
    """Alice's grant g1 (approved by bob and carol, jti-1), and dave's g2 (auto, uid-2), then revoked."""
    spec: list[tuple[str, str, str, int, dict[str, Any]]] = [
        ("grant.requested", "alice", "g1", 0, {"reason": "INC-7", "ticket": "T-1"}),
        ("grant.approval_recorded", "bob", "g1", 1, {}),
        ("grant.approved", "carol", "g1", 2, {"approvers": ["bob", "carol"]}),
        ("grant.activated", "kubejit", "g1", 3, {"approvers": ["bob", "carol"]}),
        ("token.minted", "alice", "g1", 4, {"token_id": "jti-1", "service_account_uid": "uid-1"}),
        ("grant.requested", "dave", "g2", 5, {"reason": "deploy"}),
        ("grant.activated", "kubejit", "g2", 6, {}),
        ("token.refreshed", "dave", "g2", 7, {"token_id": "jti-2", "service_account_uid": "uid-2"}),
        ("grant.revoked", "root", "g2", 60, {}),
    ]
    events, prev = [], GENESIS
    for seq, (action, actor, grant, minutes, extra) in enumerate(spec, start=1):
        person = "alice" if grant == "g1" else "dave"
        details = {"namespaces": ["payments"], "role": "view", **extra}
        event = AuditEvent(
            action=action,
            actor=actor,
            at=T0 + timedelta(minutes=minutes),
            grant_id=GrantId(grant),
            subject=person,
            cluster="prod",
            details=details,
        )
        stored = link(event, seq=seq, event_id=f"{seq:032x}", prev_hash=prev)
        events.append(stored)
        prev = stored.hash
    return events


def line(
    username: str,
    *,
    uid: str | None = None,
    jti: str | None = None,
    stage: str = "ResponseComplete",
    groups: tuple[str, ...] = ("system:serviceaccounts",),
) -> str:
    user: dict[str, Any] = {"username": username, "groups": list(groups)}
    if uid:
        user["uid"] = uid
    if jti:
        user["extra"] = {"authentication.kubernetes.io/credential-id": [f"JTI={jti}"]}
    return json.dumps(
        {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": "a-" + username[-3:],
            "stage": stage,
            "requestURI": "/api/v1/namespaces/payments/pods",
            "verb": "list",
            "user": user,
            "sourceIPs": ["127.0.0.1"],
            "userAgent": "kubectl/v1.37.2",
            "objectRef": {"resource": "pods", "namespace": "payments", "apiVersion": "v1"},
            "responseStatus": {"code": 200},
            "requestReceivedTimestamp": "2026-03-01T12:05:00.000000Z",
        }
    )


def test_each_request_finds_its_grant_by_the_strongest_key() -> None:
    records = grant_records(trail())
    index = GrantIndex(records.values(), grant_namespace="kubejit-grants")
    log = [
        line("system:serviceaccount:kubejit-grants:kubejit-g1", uid="uid-1", jti="jti-1"),
        line("system:serviceaccount:kubejit-grants:kubejit-g2", uid="uid-2"),
        line("system:serviceaccount:kubejit-grants:kubejit-g1"),
        line("system:serviceaccount:kubejit-grants:kubejit-g1", jti="jti-1", stage="RequestReceived"),
        line("system:serviceaccount:other:kubejit-g1"),  # not kubejit's namespace: a look-alike
        line("kubejit-admin"),
        "",
    ]
    found = list(correlate(parse_audit_log(log), index))
    assert [(c.grant.person, c.grant.grant_id, c.matched_by) for c in found] == [
        ("alice", "g1", "jti"),
        ("dave", "g2", "serviceaccount-uid"),
        ("alice", "g1", "serviceaccount-name"),
    ]
    first = found[0].to_dict()
    assert (first["reason"], first["ticket"], first["approvers"]) == ("INC-7", "T-1", ["bob", "carol"])
    assert (first["verb"], first["resource"], first["namespace"], first["code"]) == (
        "list",
        "pods",
        "payments",
        200,
    )


def test_jwt_mode_requests_name_the_person_and_match_on_the_grant_group() -> None:
    index = GrantIndex(grant_records(trail()).values(), grant_namespace="kubejit-grants")
    authenticated = "system:authenticated"
    log = [
        line("kubejit:alice", groups=("kubejit:grant:g1", authenticated)),
        line("kubejit:dave", groups=("kubejit:grant:g2", authenticated), jti="jti-2"),
        line("kubejit:alice", groups=(authenticated,)),  # no grant group: not a kubejit grant's request
        line("kubejit:alice", groups=("kubejit:grant:g1", "kubejit:grant:g2")),  # never minted: ambiguous
        line("kubejit:alice", groups=("kubejit:grant:g9",)),  # no such grant
    ]
    found = list(correlate(parse_audit_log(log), index))
    assert [(c.grant.person, c.grant.grant_id, c.matched_by, c.request.username) for c in found] == [
        ("alice", "g1", "grant-group", "kubejit:alice"),
        ("dave", "g2", "jti", "kubejit:dave"),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        '{"kind": "Pod"}',
        "[1, 2]",
        '{"kind": "Event", "stage": "ResponseComplete", "user": "alice"}',
        '{"kind": "Event", "stage": "ResponseComplete", "user": {"extra": []}, "objectRef": 3}',
        '{"kind": "Event", "stage": "ResponseComplete", "sourceIPs": 5}',
    ],
)
def test_lines_that_are_not_audit_events_are_refused_with_their_line_number(bad: str) -> None:
    with pytest.raises(MalformedAuditLine, match="line 2"):
        list(parse_audit_log([line("x"), bad]))


def test_who_had_access_follows_activation_and_end() -> None:
    records = grant_records(trail()).values()
    window = {"cluster": "prod", "namespace": "payments"}
    everyone = who_had_access(records, since=T0, until=T0 + timedelta(hours=2), **window)
    assert [r.grant_id for r in everyone] == ["g1", "g2"]
    after_revoke = who_had_access(
        records, since=T0 + timedelta(minutes=61), until=T0 + timedelta(hours=2), **window
    )
    assert [r.grant_id for r in after_revoke] == ["g1"]
    before = who_had_access(records, since=T0 - timedelta(hours=1), until=T0 + timedelta(minutes=2), **window)
    assert before == []  # requested but not yet active
    assert (
        who_had_access(records, since=T0, until=T0 + timedelta(hours=2), cluster="prod", namespace="x") == []
    )
    assert (
        who_had_access(records, since=T0, until=T0 + timedelta(hours=2), cluster="dev", namespace="payments")
        == []
    )


def test_records_keep_approvers_tokens_and_the_end() -> None:
    records = grant_records(trail())
    g1, g2 = records["g1"], records["g2"]
    assert g1.approvers == ["bob", "carol"] and g1.token_ids == {"jti-1"} and g1.ended_at is None
    assert g2.service_account_uids == {"uid-2"} and g2.ended_by == "root"
    assert g2.to_dict()["ended_at"] == "2026-03-01T13:00:00.000000Z"
