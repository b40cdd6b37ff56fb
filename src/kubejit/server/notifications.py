"""Wire notifications into the broker: each channel is a NoticeSink behind its own delivery worker.

The audit log is the outbox: a grant operation only appends its event (as it always does), and each
channel's worker sends what the routes say, under the channel's lease and cursor (``notify:<name>``
in the audit sinks' cursor table), with the audit sinks' retries and backoff. So a notice is never
in a grant operation's way, survives a restart and is sent by one replica. A new channel starts at
the log's end: it is not sent the history. Secrets are read here, at start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from kubejit.audit.delivery.sinks.notice import NoticeSink
from kubejit.audit.delivery.sinks.notice_channels import (
    Channel,
    EmailChannel,
    SlackChannel,
    TeamsChannel,
    WebhookChannel,
)
from kubejit.audit.delivery.worker import DeliveryOptions, SinkDelivery
from kubejit.audit.event import StoredEvent
from kubejit.clock import Clock
from kubejit.errors import ConfigError, NotFound
from kubejit.grants.model import Grant
from kubejit.ids import GrantId
from kubejit.notify.message import Notice
from kubejit.notify.routing import Audience, Router, notice_groups
from kubejit.notify_settings import (
    ChannelSettings,
    EmailChannelSettings,
    NotificationSettings,
    SlackChannelSettings,
    TeamsChannelSettings,
    WebhookChannelSettings,
    http_url,
)
from kubejit.server.audit_delivery import hand_over, replica_id
from kubejit.server.workers import Worker
from kubejit.sink_settings import SecretSource, read_secret
from kubejit.store.audit_cursors import SqlCursorStore
from kubejit.store.expiry_warnings import SqlExpiryWarnings

CURSOR_PREFIX = "notify:"
#: Small batches: a crash mid-batch sends at most this many notices again.
BATCH_SIZE = 20
WHAT = "notification channel"


def cursor_name(channel: str) -> str:
    return CURSOR_PREFIX + channel


def build_channel(settings: ChannelSettings) -> Channel:
    """A ready channel; secrets are read now, and a bad one is a config error naming where it was."""
    if isinstance(settings, WebhookChannelSettings):
        key = read_secret(settings.hmac_key, sink=settings.name, what=WHAT)
        return WebhookChannel(
            settings.name,
            url=settings.url,
            key=key,
            timeout=settings.timeout_seconds,
            ca_file=settings.ca_file,
        )
    if isinstance(settings, SlackChannelSettings | TeamsChannelSettings):
        url = _secret_url(settings.url, settings.name)
        cls = SlackChannel if isinstance(settings, SlackChannelSettings) else TeamsChannel
        return cls(settings.name, url=url, timeout=settings.timeout_seconds, ca_file=settings.ca_file)
    if isinstance(settings, EmailChannelSettings):
        password = None
        if settings.password is not None:
            password = read_secret(settings.password, sink=settings.name, what=WHAT)
        return EmailChannel(
            settings.name,
            host=settings.host,
            port=settings.smtp_port,
            security=settings.security,
            sender=settings.from_,
            username=settings.username,
            password=password,
            ca_file=settings.ca_file,
            timeout=settings.timeout_seconds,
        )
    raise TypeError(f"unknown channel settings {type(settings).__name__}")


def _secret_url(source: SecretSource, channel: str) -> str:
    """A webhook URL read from its secret, checked like an inline one (without quoting it)."""
    raw = read_secret(source, sink=channel, what=WHAT)
    try:
        return http_url(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ConfigError(
            f"{WHAT} {channel}: the URL in {source.describe()} is not usable: {e}",
            hint="Store the webhook URL alone, as the service shows it (https://...).",
        ) from None


class Recipients:
    """Routing for one channel: who an event's notice goes to, from the grant as stored now."""

    def __init__(
        self,
        router: Router,
        channel: Channel,
        lookup: Callable[[GrantId], Grant | None],
        email_of: Callable[[str], str | None],
    ) -> None:
        self.router = router
        self.channel = channel
        self.lookup = lookup
        self.email_of = email_of

    def _requester_email(self, grant: Grant | None, requester: str) -> str | None:
        """The email verified when they asked (on the grant), else the one of their last login."""
        if grant is not None and grant.requester_person:
            return grant.requester_person
        return self.email_of(requester) if self.channel.addressed else None

    def send(self, notice: Notice, event: StoredEvent) -> None:
        grant = self.lookup(GrantId(notice.grant_id))
        approver_groups = grant.approver_groups if grant is not None else frozenset()
        audience = Audience(
            kind=notice.kind,
            rule=str(event.details.get("rule") or (grant.rule if grant else "")),
            groups=notice_groups(notice.kind, event.details, approver_groups),
            requester=notice.requester,
            requester_email=self._requester_email(grant, notice.requester),
        )
        to = self.router.recipients(self.channel.name, audience)
        if to is None:
            return
        self.channel.send(notice, event_id=event.event_id, to=to)


class WakeSignal:
    """Tells this replica's channel workers that the log has grown: they send at once instead of at
    their next poll. Only a nudge: other replicas (and a missed one) still find it by polling."""

    def __init__(self) -> None:
        self._targets: list[Callable[[], None]] = []

    def connect(self, target: Callable[[], None]) -> None:
        self._targets.append(target)

    def __call__(self) -> None:
        for target in self._targets:
            target()


@dataclass
class Notifications:
    deliveries: list[SinkDelivery]
    interval: float
    warnings: SqlExpiryWarnings
    channels: list[Channel] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    cursors: SqlCursorStore | None = None
    owner: str = ""

    @classmethod
    def build(
        cls,
        settings: NotificationSettings,
        *,
        cursors: SqlCursorStore,
        clock: Clock,
        public_url: str,
        lookup: Callable[[GrantId], Grant | None],
        email_of: Callable[[str], str | None] = lambda _: None,
    ) -> Notifications:
        channels: list[Channel] = []
        try:
            for spec in settings.channels:
                channels.append(build_channel(spec))
        except BaseException:
            for channel in channels:
                channel.close()
            raise
        router = Router(settings)
        cursors.ensure([cursor_name(c.name) for c in channels], from_tail=True)
        owner = replica_id()
        deliveries = [
            SinkDelivery(
                NoticeSink(
                    cursor_name(channel.name),
                    send=Recipients(router, channel, lookup, email_of).send,
                    public_url=public_url,
                ),
                cursors=cursors,
                clock=clock,
                owner=owner,
                options=DeliveryOptions(
                    batch_size=BATCH_SIZE,
                    retry_initial_seconds=settings.retry.initial_seconds,
                    retry_max_seconds=settings.retry.max_seconds,
                    lease_seconds=max(60.0, 3 * spec.timeout_seconds),
                ),
            )
            for channel, spec in zip(channels, settings.channels, strict=True)
        ]
        warnings = SqlExpiryWarnings(
            cursors.engine, clock=clock, window=timedelta(minutes=settings.expiring_soon_minutes)
        )
        return cls(
            deliveries, settings.delivery_interval_seconds, warnings, channels, cursors=cursors, owner=owner
        )

    def start(self, *, sweep_interval: float, wake: WakeSignal | None = None) -> list[Worker]:
        """Nothing runs without channels: the expiry warning is recorded only when someone is told."""
        if not self.deliveries:
            return []
        signal = wake or WakeSignal()

        def warn() -> None:
            if self.warnings.warn_due():
                signal()

        self.workers.append(Worker("expiry-warnings", warn, interval=sweep_interval))
        for delivery in self.deliveries:
            self.workers.append(
                Worker(
                    f"notify-{delivery.sink.name[len(CURSOR_PREFIX) :]}",
                    delivery.tick,
                    interval=self.interval,
                )
            )
        for worker in self.workers[1:]:
            signal.connect(worker.wake)
        for worker in self.workers:
            worker.start()
        return self.workers

    def stop(self) -> None:
        hand_over(self.deliveries, self.workers, self.cursors, self.owner)  # as the audit sinks do

    def close(self) -> None:
        self.stop()
        for channel in self.channels:
            channel.close()


def grant_lookup(get: Callable[[GrantId], Grant]) -> Callable[[GrantId], Grant | None]:
    def lookup(grant_id: GrantId) -> Grant | None:
        try:
            return get(grant_id)
        except NotFound:
            return None

    return lookup
