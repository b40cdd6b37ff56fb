"""Routing: which channels and addresses a notice goes to, by rule, approver group and kind."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from kubejit.audit.event import StoredEvent
from kubejit.grants.model import Grant, GrantState
from kubejit.ids import ClusterName, GrantId, PrincipalName
from kubejit.notify.message import Notice, NoticeKind
from kubejit.notify.routing import Audience, Router, notice_groups
from kubejit.notify_settings import NotificationSettings
from kubejit.policy.model import RoleRef
from kubejit.server.notifications import Recipients

pytestmark = pytest.mark.unit
T = TypeVar("T")

SETTINGS = NotificationSettings.model_validate(
    {
        "channels": [
            {"name": "sre-slack", "type": "slack", "url": {"fromEnv": "U"}},
            {"name": "prod-hook", "type": "webhook", "url": "https://h.example.com", "hmacKey": {"fromEnv": "K"}},
            {"name": "mail", "type": "email", "host": "smtp.example.com", "from": "kj@example.com", "to": ["all@example.com"]},
        ],
        "routes": [
            {"channels": ["sre-slack"], "approverGroups": ["sre"], "events": ["needsApproval", "breakGlass"]},
            {"channels": ["prod-hook"], "rules": ["prod-admin"]},
            {"channels": ["mail"], "approverGroups": ["security"], "events": ["breakGlass"], "to": ["sec@example.com"]},
        ],
        "requesterEmail": {"channel": "mail"},
        "emails": {"alice": "alice@example.com"},
    }
)  # fmt: skip
ROUTER = Router(SETTINGS)


def _for(
    kind: NoticeKind, *, rule: str = "dev", groups: set[str] | None = None, email: str | None = None
) -> Audience:
    return Audience(
        kind=kind, rule=rule, groups=frozenset(groups or {"sre"}), requester="alice", requester_email=email
    )


def test_needs_approval_goes_to_the_approver_groups_routes_only() -> None:
    audience = _for("needs_approval")
    assert ROUTER.recipients("sre-slack", audience) == ()
    assert ROUTER.recipients("prod-hook", audience) is None  # another rule's route
    assert ROUTER.recipients("mail", audience) is None  # needsApproval never goes to the requester
    assert ROUTER.recipients("sre-slack", _for("needs_approval", groups={"dba"})) is None


def test_a_rule_route_carries_every_kind_of_that_rule() -> None:
    for kind in ("needs_approval", "approved", "expiring_soon"):
        assert ROUTER.recipients("prod-hook", _for(kind, rule="prod-admin", groups={"x"})) == ()


def test_requester_facing_notices_go_to_the_verified_email_then_the_configured_one() -> None:
    assert ROUTER.recipients("mail", _for("approved", email="a.l@corp.example")) == ("a.l@corp.example",)
    assert ROUTER.recipients("mail", _for("expiring_soon")) == ("alice@example.com",)
    nobody = Audience(kind="denied", rule="dev", groups=frozenset(), requester="bob")
    assert ROUTER.recipients("mail", nobody) is None
    assert ROUTER.recipients("sre-slack", _for("approved")) is None


def test_break_glass_goes_to_the_reviewers_the_event_names_else_the_approver_groups() -> None:
    reviewers = notice_groups("break_glass", {"reviewers": ["security"]}, frozenset({"sre"}))
    assert reviewers == {"security"}
    assert ROUTER.recipients("mail", _for("break_glass", groups=set(reviewers))) == ("sec@example.com",)
    assert ROUTER.recipients("sre-slack", _for("break_glass", groups=set(reviewers))) is None
    for odd in (None, "security", [], [3, ""], {"a": 1}):
        assert notice_groups("break_glass", {"reviewers": odd}, frozenset({"sre"})) == {"sre"}
    assert notice_groups("needs_approval", {"reviewers": ["security"]}, frozenset({"sre"})) == {"sre"}


class _Recorder:
    name = "mail"
    addressed = True

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[str, ...]]] = []

    def send(self, notice: Notice, *, event_id: str, to: Sequence[str]) -> None:
        self.sent.append((event_id, tuple(to)))

    def close(self) -> None:
        return None


def _stored(grant_id: str) -> StoredEvent:
    return StoredEvent(
        seq=1, event_id="e1", at=datetime(2026, 12, 6, tzinfo=UTC), action="grant.approved", actor="bob",
        outcome="success", grant_id=GrantId(grant_id), subject="carol", cluster="prod", details={"rule": "dev"},
        prev_hash="", hash="",
    )  # fmt: skip


def _const(value: T) -> Callable[[Any], T]:
    return lambda _: value


def test_the_requester_email_falls_back_from_the_grant_to_the_last_login() -> None:
    notice = Notice("approved", "g1", "carol", "prod", (), "view", "r", "", "https://x/ui/requests/g1")
    grant = Grant(
        id=GrantId("g1"), requester=PrincipalName("carol"), cluster=ClusterName("prod"), namespaces=(),
        role=RoleRef(name="view", kind="ClusterRole", ref_name="view"), duration=timedelta(hours=1), reason="r",
        ticket=None, state=GrantState.APPROVED, rule="dev", created_at=datetime(2026, 12, 6, tzinfo=UTC),
        pending_until=datetime(2026, 12, 6, 1, tzinfo=UTC),
    )  # fmt: skip
    for person, lookup, want in [
        ("carol@corp.example", "carol@old.example", ("carol@corp.example",)),
        (None, "carol@login.example", ("carol@login.example",)),
    ]:
        channel = _Recorder()
        stored = replace(grant, requester_person=person)
        recipients = Recipients(ROUTER, channel, _const(stored), _const(lookup))
        recipients.send(notice, _stored("g1"))
        assert channel.sent == [("e1", want)]
    channel = _Recorder()
    Recipients(ROUTER, channel, lambda _id: None, lambda _name: None).send(notice, _stored("g1"))
    assert channel.sent == []  # carol has no address anywhere: nothing sent, nothing fails


UNMATCHABLE = """
roles: {view: {clusterRole: view}}
rules:
  - name: prod-view
    groups: [developers]
    clusters: [prod]
    namespaces: [app]
    roles: [view]
    approval: {approvers: 1, groups: [sre]}
  - name: prod-break-glass
    groups: [oncall]
    clusters: [prod]
    namespaces: [app]
    roles: [view]
    breakGlass: true
    reviewers: [security]
"""


def test_a_route_naming_a_rule_or_group_the_policy_lacks_is_logged_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from kubejit.policy.load import parse_policy
    from kubejit.server.wiring import _warn_of_unmatchable_routes

    settings = NotificationSettings.model_validate(
        {
            "channels": [{"name": "hook", "type": "slack", "url": {"fromEnv": "U"}}],
            "routes": [
                {"channels": ["hook"], "rules": ["prod-view", "prod-veiw"]},
                {"channels": ["hook"], "approverGroups": ["sre", "security", "sre-team"]},
                {"channels": ["hook"]},
            ],
        }
    )
    with caplog.at_level("WARNING", logger="kubejit.server.wiring"):
        _warn_of_unmatchable_routes(settings, parse_policy(UNMATCHABLE))
    assert [r.getMessage() for r in caplog.records] == [
        "notifications.routes[0] names rules the policy does not have: prod-veiw: "
        "no notice will match that condition",
        "notifications.routes[1] names approverGroups no policy rule approves or reviews with: sre-team: "
        "no notice will match that condition",
    ]
