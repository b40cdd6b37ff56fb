"""The ``notifications:`` section of the broker config: channels, routes and the expiry warning.

Pydantic lives here only because this is the config boundary (``config.Settings.notifications``).
Secrets are never inline: a Slack or Teams webhook URL *is* a credential (anyone holding it can
post), so it is read from a file or an environment variable like the webhook's HMAC key and the SMTP
password (``SecretSource``), when the broker starts. Routes are checked against the channels here,
so a route naming a channel that does not exist stops the broker at start with the route's place.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from kubejit.checks import duplicates, is_loopback
from kubejit.sink_settings import RetrySettings, SecretSource, SinkName

#: The event names used in ``events:`` lists (camelCase, as every config key) -> notice kinds.
EVENT_KINDS = {
    "needsApproval": "needs_approval",
    "approved": "approved",
    "activated": "activated",
    "denied": "denied",
    "expiringSoon": "expiring_soon",
    "breakGlass": "break_glass",
}
EventName = Literal["needsApproval", "approved", "activated", "denied", "expiringSoon", "breakGlass"]
ALL_EVENTS: tuple[EventName, ...] = (
    "needsApproval", "approved", "activated", "denied", "expiringSoon", "breakGlass",
)  # fmt: skip
#: What a requester is told about by default: their own request's outcome and its end coming.
REQUESTER_EVENTS: tuple[EventName, ...] = ("approved", "activated", "denied", "expiringSoon")
#: Channel types, the discriminator values pydantic puts into error locations (not YAML keys).
CHANNEL_TYPES = frozenset({"webhook", "slack", "teams", "email"})

_EMAIL = re.compile(r"^[^@\s<>,;\"]{1,64}@[A-Za-z0-9.-]{1,253}$")
Email = Annotated[str, Field(pattern=_EMAIL.pattern, max_length=320)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class _Channel(_Model):
    name: SinkName
    timeout_seconds: float = Field(default=10, gt=0, le=300)


def http_url(url: str) -> str:
    """An http(s) URL with a host; plain http only to loopback. Errors never quote the URL: its
    path or query may be the secret (a Slack webhook's is)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL (scheme {parts.scheme!r}, host {parts.hostname!r})")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError("plain http is only allowed to a loopback address; use https")
    return url.strip()


class WebhookChannelSettings(_Channel):
    """Generic JSON, one POST per notice, HMAC-signed exactly like the audit webhook sink."""

    type: Literal["webhook"]
    url: str
    hmac_key: SecretSource
    ca_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return http_url(url)


class _SecretUrlChannel(_Channel):
    url: SecretSource
    ca_file: Path | None = None

    @field_validator("url", mode="before")
    @classmethod
    def _not_inline(cls, value: Any) -> Any:
        if isinstance(value, str):  # the message never repeats it: it is the credential
            raise ValueError(
                "this webhook URL is a credential: put it in a file ({fromFile: path}) or an "
                "environment variable ({fromEnv: NAME}), never inline"
            )
        return value


class SlackChannelSettings(_SecretUrlChannel):
    """A Slack-compatible incoming webhook (Block Kit); the URL is the secret."""

    type: Literal["slack"]


class TeamsChannelSettings(_SecretUrlChannel):
    """A Microsoft Teams incoming webhook or Workflows URL (Adaptive Card); the URL is the secret."""

    type: Literal["teams"]


class EmailChannelSettings(_Channel):
    """SMTP: STARTTLS (port 587), implicit TLS (465), or plain only to a loopback relay."""

    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    #: The CA that signed the server's certificate (default: the system's trust store).
    ca_file: Path | None = None
    username: str | None = Field(default=None, min_length=1)
    password: SecretSource | None = None
    from_: Email = Field(alias="from")
    #: Addresses this channel sends to when a route names none (e.g. a team's list).
    to: list[Email] = Field(default_factory=list)

    @model_validator(mode="after")
    def _safe(self) -> EmailChannelSettings:
        if self.security == "none" and not is_loopback(self.host):
            raise ValueError(
                "security: none (no TLS) is only allowed to a loopback relay; use starttls or tls"
            )
        if (self.username is None) != (self.password is None):
            raise ValueError("set both username and password (fromFile or fromEnv) for SMTP AUTH, or neither")
        if self.security == "none" and self.password is not None:
            raise ValueError("SMTP AUTH sends the password: it needs security: starttls or tls")
        return self

    @property
    def smtp_port(self) -> int:
        return self.port or {"starttls": 587, "tls": 465, "none": 25}[self.security]


ChannelSettings = Annotated[
    WebhookChannelSettings | SlackChannelSettings | TeamsChannelSettings | EmailChannelSettings,
    Field(discriminator="type"),
]


class RouteSettings(_Model):
    """Which notices go to which channels. Every condition given must hold; none given: every notice.

    ``approverGroups`` matches the groups a notice is for: the rule's approver groups, or for
    break-glass the reviewers the rule names (falling back to its approver groups).
    """

    channels: list[SinkName] = Field(min_length=1)
    rules: list[str] = Field(default_factory=list)
    approver_groups: list[str] = Field(default_factory=list)
    events: list[EventName] = Field(default_factory=lambda: list(ALL_EVENTS))
    #: For the email channels of this route: where to send (default: the channel's own ``to``).
    to: list[Email] = Field(default_factory=list)


class RequesterEmailSettings(_Model):
    """Tell requesters about their own requests, at the email the IdP verified (or ``emails``)."""

    channel: SinkName
    events: list[EventName] = Field(default_factory=lambda: list(REQUESTER_EVENTS))

    @field_validator("events")
    @classmethod
    def _not_for_approvers(cls, events: list[str]) -> list[str]:
        if "needsApproval" in events:
            raise ValueError("needsApproval goes to approvers (routes), not to the requester")
        return events


class NotificationSettings(_Model):
    channels: list[ChannelSettings] = Field(default_factory=list)
    routes: list[RouteSettings] = Field(default_factory=list)
    requester_email: RequesterEmailSettings | None = None
    #: Addresses by login name, for logins whose IdP gives no verified ``email`` (the dev issuer).
    emails: dict[str, Email] = Field(default_factory=dict)
    #: ``grant.expiring_soon`` is recorded (once per grant end) this long before a grant ends.
    expiring_soon_minutes: float = Field(default=5, gt=0, le=24 * 60)
    #: How often each channel's worker looks for new events when it is caught up.
    delivery_interval_seconds: float = Field(default=1, gt=0, le=60)
    #: Backoff between failed sends to one channel, as for audit sinks.
    retry: RetrySettings = Field(default_factory=RetrySettings)

    @field_validator("channels")
    @classmethod
    def _unique_names(cls, channels: list[Any]) -> list[Any]:
        dupes = duplicates([c.name for c in channels])
        if dupes:
            raise ValueError(f"duplicate channel names: {', '.join(dupes)}")
        return channels

    @model_validator(mode="after")
    def _routes_name_channels(self) -> NotificationSettings:
        by_name = {c.name: c for c in self.channels}
        for n, route in enumerate(self.routes):
            unknown = [c for c in route.channels if c not in by_name]
            if unknown:
                known = ", ".join(sorted(by_name)) or "none"
                raise ValueError(
                    f"routes[{n}] names unknown channel(s) {', '.join(unknown)} (known: {known})"
                )
            emails = [by_name[c] for c in route.channels if isinstance(by_name[c], EmailChannelSettings)]
            if route.to and not emails:
                raise ValueError(f"routes[{n}]: 'to' applies to email channels, and the route names none")
            for channel in emails:
                assert isinstance(channel, EmailChannelSettings)
                if not route.to and not channel.to:
                    raise ValueError(
                        f"routes[{n}] sends to email channel {channel.name} without addresses: "
                        "set 'to' on the route or on the channel"
                    )
        if self.requester_email is not None:
            target = by_name.get(self.requester_email.channel)
            if not isinstance(target, EmailChannelSettings):
                raise ValueError(
                    f"requesterEmail.channel {self.requester_email.channel!r} is not an email channel "
                    "of notifications.channels"
                )
        return self


def resolve_paths(notifications: Any, resolve: Any) -> None:
    """Make relative file paths in the raw ``notifications`` mapping relative to the config file."""
    if not isinstance(notifications, dict) or not isinstance(notifications.get("channels"), list):
        return
    for channel in notifications["channels"]:
        if not isinstance(channel, dict):
            continue
        if "caFile" in channel:
            channel["caFile"] = resolve(channel["caFile"])
        for key in ("hmacKey", "url", "password"):
            secret = channel.get(key)
            if isinstance(secret, dict) and "fromFile" in secret:
                secret["fromFile"] = resolve(secret["fromFile"])
