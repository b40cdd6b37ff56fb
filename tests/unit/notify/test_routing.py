"""Routing: which channels and addresses a notice goes to, by rule, approver group and kind."""

from __future__ import annotations

import pytest

from kubejit.notify.message import NoticeKind
from kubejit.notify.routing import Audience, Router, notice_groups
from kubejit.notify_settings import NotificationSettings

pytestmark = pytest.mark.unit

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
