"""Who a notice is for, and which channels carry it there (pure; the settings are the routes).

A notice is for groups: the rule's approver groups, or for break-glass the reviewers the rule
names (the activation event's ``reviewers``), falling back to its approver groups. A route matches
when each condition it sets holds (its events, its rules, one of its approver groups). Requester-
facing notices also go to the requester's own address through ``requesterEmail``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubejit.notify.message import NoticeKind
from kubejit.notify_settings import EVENT_KINDS, EmailChannelSettings, NotificationSettings


@dataclass(frozen=True)
class Audience:
    """What routing needs to know about a notice's grant, looked up when it is sent."""

    kind: NoticeKind
    rule: str
    groups: frozenset[str]
    requester: str
    #: The requester's verified email (the IdP's ``email`` claim), if known.
    requester_email: str | None = None


def notice_groups(
    kind: NoticeKind, details: Mapping[str, Any], approver_groups: frozenset[str]
) -> frozenset[str]:
    """The groups a notice is for; ``reviewers`` is read defensively (a list of group names)."""
    if kind == "break_glass":
        reviewers = details.get("reviewers")
        if isinstance(reviewers, list | tuple):
            named = frozenset(str(r) for r in reviewers if isinstance(r, str) and r)
            if named:
                return named
    return approver_groups


def _kinds(events: list[str]) -> frozenset[str]:
    return frozenset(EVENT_KINDS[e] for e in events)


class Router:
    def __init__(self, settings: NotificationSettings) -> None:
        self.settings = settings
        self._email = {c.name for c in settings.channels if isinstance(c, EmailChannelSettings)}
        self._default_to = {
            c.name: tuple(c.to) for c in settings.channels if isinstance(c, EmailChannelSettings)
        }

    def recipients(self, channel: str, audience: Audience) -> tuple[str, ...] | None:
        """For ``channel``: None (not sent), () (a webhook: post once) or the email addresses."""
        addressed = channel in self._email
        to: dict[str, None] = {}
        matched = False
        for route in self.settings.routes:
            if channel not in route.channels or audience.kind not in _kinds(list(route.events)):
                continue
            if route.rules and audience.rule not in route.rules:
                continue
            if route.approver_groups and not audience.groups & set(route.approver_groups):
                continue
            matched = True
            if addressed:
                to.update(dict.fromkeys(route.to or self._default_to[channel]))
        requester = self.settings.requester_email
        if (
            addressed
            and requester is not None
            and requester.channel == channel
            and audience.kind in _kinds(list(requester.events))
        ):
            address = audience.requester_email or self.settings.emails.get(audience.requester)
            if address:
                to[address] = None
                matched = True
        if not matched:
            return None
        if addressed:
            return tuple(to) or None
        return ()


def routes_that_cannot_match(
    settings: NotificationSettings, *, rules: frozenset[str], groups: frozenset[str]
) -> list[str]:
    """Route conditions no notice can meet under a policy with these rule names and approver or
    reviewer groups: a misspelt rule or group silently sends nothing, so each is said (for the log)."""
    found = []
    for n, route in enumerate(settings.routes):
        missing_rules = sorted(set(route.rules) - rules)
        if missing_rules:
            found.append(
                f"notifications.routes[{n}] names rules the policy does not have: {', '.join(missing_rules)}"
            )
        missing_groups = sorted(set(route.approver_groups) - groups)
        if missing_groups:
            found.append(
                f"notifications.routes[{n}] names approverGroups no policy rule approves or reviews with: "
                f"{', '.join(missing_groups)}"
            )
    return found
