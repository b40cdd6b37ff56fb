from __future__ import annotations

from typing import Any

import pytest

from kubejit.notify.events import notice_for

DETAILS: dict[str, Any] = {
    "namespaces": ["payments"],
    "role": "edit",
    "reason": "fix <b>prod</b>",
    "ticket": "INC-1",
    "decision": "approval",
}


def _notice(action: str, **details: Any) -> Any:
    return notice_for(
        action=action,
        grant_id="g-1",
        subject="alice",
        cluster="prod",
        details={**DETAILS, **details},
        public_url="https://jit.example/",
    )


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        ("grant.requested", "needs_approval"),
        ("grant.approved", "approved"),
        ("grant.activated", "activated"),
        ("grant.denied", "denied"),
        ("grant.break_glass", "break_glass"),
    ],
)
def test_notifying_events_become_notices(action: str, kind: str) -> None:
    notice = _notice(action)
    assert notice is not None
    assert notice.kind == kind
    assert notice.requester == "alice"
    assert notice.namespaces == ("payments",)
    assert notice.reason == "fix <b>prod</b>"  # raw here; formats escape it
    assert notice.link == "https://jit.example/ui/requests/g-1"


def test_auto_approved_request_does_not_notify() -> None:
    assert _notice("grant.requested", decision="auto") is None


@pytest.mark.parametrize("action", ["grant.revoked", "grant.expired", "grant.cleaned_up", "policy.decided"])
def test_other_events_do_not_notify(action: str) -> None:
    assert _notice(action) is None


def test_event_without_grant_does_not_notify() -> None:
    assert (
        notice_for(
            action="grant.approved",
            grant_id=None,
            subject=None,
            cluster=None,
            details={},
            public_url="https://x",
        )
        is None
    )
