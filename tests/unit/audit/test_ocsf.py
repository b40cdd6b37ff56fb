"""OCSF export: each kubejit action lands in the right class and activity, nothing secret, nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubejit.audit.chain import GENESIS, link
from kubejit.audit.event import StoredEvent
from kubejit.audit.ocsf import MAPPINGS, to_ocsf
from kubejit.grants.ports import AuditEvent
from kubejit.ids import GrantId

pytestmark = pytest.mark.unit

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def stored(action: str, *, outcome: str = "success", **details: object) -> StoredEvent:
    event = AuditEvent(
        action=action,
        actor="alice",
        at=AT,
        outcome=outcome,
        grant_id=GrantId("g0123456789ab"),
        subject="alice",
        cluster="prod",
        details={"role": "view", "source_ip": "10.0.0.7", "user_agent": "kubejit/1", **details},
    )
    return link(event, seq=3, event_id="e" * 32, prev_hash=GENESIS)


@pytest.mark.parametrize(
    ("action", "class_uid", "activity_id"),
    [
        ("auth.login", 3002, 1),
        ("auth.failed", 3002, 1),
        ("token.minted", 3002, 4),
        ("token.refreshed", 3002, 5),
        ("policy.decided", 3003, 99),
        ("grant.approved", 3003, 99),
        ("grant.activated", 3003, 1),
        ("grant.revoked", 3001, 8),
        ("grant.expired", 3001, 8),
        ("reconciler.deleted_orphans", 3001, 6),
        ("broker.started", 0, 99),
    ],
)
def test_actions_map_to_ocsf_classes(action: str, class_uid: int, activity_id: int) -> None:
    out = to_ocsf(stored(action))
    assert (out["class_uid"], out["activity_id"], out["type_uid"]) == (
        class_uid,
        activity_id,
        class_uid * 100 + activity_id,
    )
    assert out["category_uid"] == (3 if class_uid else 0)


def test_common_fields_and_the_chain_are_kept() -> None:
    event = stored("grant.activated")
    out = to_ocsf(event)
    assert out["time"] == int(AT.timestamp() * 1000) and out["time_dt"] == "2026-03-01T12:00:00.000000Z"
    assert out["metadata"]["uid"] == event.event_id and out["metadata"]["sequence"] == 3
    assert out["actor"] == {"user": {"name": "alice"}} and out["user"] == {"name": "alice"}
    assert out["src_endpoint"] == {"ip": "10.0.0.7"} and out["http_request"] == {"user_agent": "kubejit/1"}
    assert out["privileges"] == ["view"] and out["status_id"] == 1
    assert out["unmapped"]["kubejit"]["hash"] == event.hash


def test_account_changes_name_the_service_account_and_failures_and_break_glass_stand_out() -> None:
    assert to_ocsf(stored("grant.revoked"))["user"] == {
        "name": "kubejit-g0123456789ab",
        "type": "ServiceAccount",
    }
    denied = to_ocsf(stored("grant.request_denied", outcome="denied"))
    assert (denied["status"], denied["severity_id"]) == ("Failure", 3)
    assert to_ocsf(stored("grant.break_glass", break_glass=True))["severity"] == "High"


def test_every_mapped_action_has_a_known_class() -> None:
    assert {m.ocsf_class[0] for m in MAPPINGS.values()} == {3001, 3002, 3003}
