"""Notification channels over real transports: a real SMTP server (STARTTLS + AUTH, implicit TLS)
and a real HTTP receiver that checks the webhook's HMAC signature, fed from a real store's audit log.

The store's grants and events are written as the grant service writes them; the channels' delivery
workers are driven tick by tick, so each test says exactly what was sent when.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from kubejit.clock import FixedClock, SystemClock
from kubejit.grants.model import Grant, GrantState
from kubejit.grants.ports import AuditEvent
from kubejit.ids import ClusterName, GrantId, NamespaceName, PrincipalName
from kubejit.notify_settings import NotificationSettings
from kubejit.policy.model import RoleRef
from kubejit.server.notifications import Notifications, WakeSignal, cursor_name, grant_lookup
from kubejit.store import audit_log
from kubejit.store.audit_cursors import SqlCursorStore
from kubejit.store.audit_store import SqlAuditStore
from kubejit.store.engine import create_store_engine
from kubejit.store.expiry_warnings import SqlExpiryWarnings
from kubejit.store.grant_store import SqlGrantStore
from kubejit.store.migrate import alembic_config, current_revision, upgrade
from kubejit.store.waking_grant_store import WakingGrantStore
from tests.integration.test_store import postgres_admin_url, store_url  # noqa: F401 (fixtures)
from tests.notify_receivers import NOTIFY_HMAC_KEY, SMTP_PASSWORD, SMTP_USER, HookReceiver, SmtpReceiver
from tests.polling import eventually

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
HOSTILE = (
    "<!channel> <script>alert(1)</script> *bold* [x](https://evil.example) &amp;\r\nBcc: evil@example.com"
)
PUBLIC = "https://kubejit.example.com"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'kubejit.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def hooks() -> Iterator[HookReceiver]:
    receiver = HookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver(tmp_path / "smtp").start()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtps(tmp_path: Path) -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver(tmp_path / "smtps", security="tls", require_auth=False).start()
    yield receiver
    receiver.stop()


def _grant(grant_id: str, **changes: Any) -> Grant:
    grant = Grant(
        id=GrantId(grant_id),
        requester=PrincipalName("alice"),
        cluster=ClusterName("prod"),
        namespaces=(NamespaceName("payments"),),
        role=RoleRef(name="admin", kind="ClusterRole", ref_name="admin"),
        duration=timedelta(hours=1),
        reason=HOSTILE,
        ticket="INC-1",
        state=GrantState.PENDING,
        rule="prod-admin",
        created_at=NOW,
        pending_until=NOW + timedelta(hours=1),
        approvals_required=1,
        approver_groups=frozenset({"sre"}),
        requester_person="alice@corp.example",
    )
    return replace(grant, **changes)


def _event(action: str, grant: Grant, **details: Any) -> AuditEvent:
    return AuditEvent(
        action=action,
        actor="alice",
        at=NOW,
        grant_id=grant.id,
        subject=grant.requester,
        cluster=grant.cluster,
        details={
            "namespaces": list(grant.namespaces),
            "role": grant.role.name,
            "rule": grant.rule,
            "reason": grant.reason,
            "ticket": grant.ticket,
            **details,
        },
    )


def _settings(
    hooks: HookReceiver, smtp: SmtpReceiver, smtps: SmtpReceiver, tmp_path: Path, *, mail_timeout: float = 10
) -> NotificationSettings:
    (tmp_path / "hmac.key").write_bytes(NOTIFY_HMAC_KEY)
    (tmp_path / "slack-url").write_text(hooks.url("/slack") + "\n")
    (tmp_path / "smtp-password").write_text(SMTP_PASSWORD)
    return NotificationSettings.model_validate(
        {
            "retry": {"initialSeconds": 0.01, "maxSeconds": 0.02},
            "channels": [
                {"name": "hook", "type": "webhook", "url": hooks.url("/hook"), "hmacKey": {"fromFile": str(tmp_path / "hmac.key")}},
                {"name": "slack", "type": "slack", "url": {"fromFile": str(tmp_path / "slack-url")}},
                {"name": "teams", "type": "teams", "url": {"fromEnv": "TEST_TEAMS_URL"}},
                {
                    "name": "mail", "type": "email", "host": "localhost", "port": smtp.port, "security": "starttls",
                    "caFile": str(smtp.ca_path), "username": SMTP_USER,
                    "password": {"fromFile": str(tmp_path / "smtp-password")}, "from": "kubejit@example.com",
                    "timeoutSeconds": mail_timeout,
                },
                {
                    "name": "mail-tls", "type": "email", "host": "localhost", "port": smtps.port, "security": "tls",
                    "caFile": str(smtps.ca_path), "from": "kubejit@example.com", "to": ["security@example.com"],
                },
            ],
            "routes": [
                {"channels": ["hook", "slack", "teams"], "approverGroups": ["sre"], "events": ["needsApproval"]},
                {"channels": ["mail"], "rules": ["prod-admin"], "events": ["needsApproval"], "to": ["sre@example.com"]},
                {"channels": ["mail-tls"], "approverGroups": ["security"], "events": ["breakGlass"]},
            ],
            "requesterEmail": {"channel": "mail"},
        }
    )  # fmt: skip


@pytest.fixture
def notifications(
    engine: Engine, hooks: HookReceiver, smtp: SmtpReceiver, smtps: SmtpReceiver, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Notifications]:  # fmt: skip
    monkeypatch.setenv("TEST_TEAMS_URL", hooks.url("/teams"))
    built = Notifications.build(
        _settings(hooks, smtp, smtps, tmp_path),
        cursors=SqlCursorStore(engine, clock=FixedClock(NOW)),
        clock=FixedClock(NOW),
        public_url=PUBLIC,
        lookup=grant_lookup(SqlGrantStore(engine).get),
    )
    yield built
    built.close()


def _drain(notifications: Notifications) -> None:
    for delivery in notifications.deliveries:
        delivery.tick()


def test_a_request_needing_approval_reaches_every_routed_channel_in_its_format(
    engine: Engine, notifications: Notifications, hooks: HookReceiver, smtp: SmtpReceiver, smtps: SmtpReceiver
) -> None:
    store = SqlGrantStore(engine)
    grant = store.add(_grant("g1"), [_event("grant.requested", _grant("g1"), decision="approval")])
    _drain(notifications)
    link = f"{PUBLIC}/ui/requests/g1"

    [hook] = hooks.received("/hook")
    assert hooks.refused == 0  # the receiver checked the HMAC signature
    assert hook.body["kind"] == "needs_approval" and hook.body["link"] == link
    assert hook.body["facts"]["reason"] == HOSTILE  # raw: JSON escapes it, the receiver renders it
    assert hook.body["event_id"] == hook.headers["X-Kubejit-Event-Id"]
    assert b"<script>" not in hook.raw  # \u003c..., ASCII-only JSON

    [slack] = hooks.received("/slack")
    text = str(slack.body)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "&lt;script&gt;" in text
    assert slack.body["blocks"][2]["elements"][0]["url"] == link
    [teams] = hooks.received("/teams")
    card = teams.body["attachments"][0]["content"]
    reason = next(f["value"] for f in card["body"][1]["facts"] if f["title"] == "Reason")
    assert "\\[x\\]\\(https://evil\\.example\\)" in reason and "\\*bold\\*" in reason
    assert card["actions"][0]["url"] == link

    [mail] = smtp.received()
    assert mail.envelope_to == ("sre@example.com",)
    assert mail.message["Bcc"] is None and "\n" not in str(mail.message["Subject"])
    assert "<script>" not in mail.html and html.escape("<script>") in mail.html and link in mail.text
    assert smtps.received() == []  # only break-glass goes to the security channel
    assert grant.state is GrantState.PENDING


def test_approved_goes_to_the_requesters_verified_email_and_break_glass_to_the_reviewers(
    engine: Engine, notifications: Notifications, hooks: HookReceiver, smtp: SmtpReceiver, smtps: SmtpReceiver
) -> None:
    store = SqlGrantStore(engine)
    store.add(_grant("g2"), [_event("grant.approved", _grant("g2"))])
    glass = _grant("g3", rule="break-glass", break_glass=True)
    store.add(glass, [_event("grant.break_glass", glass, reviewers=["security"], review_required=True)])
    _drain(notifications)
    [approved] = smtp.received()
    assert approved.envelope_to == ("alice@corp.example",) and "Access request approved" in approved.text
    [review] = smtps.received()
    assert review.envelope_to == ("security@example.com",) and "Break-glass" in review.text
    assert hooks.received("/hook") == []  # the sre routes carry needsApproval only


def test_a_receiver_that_was_down_gets_every_notice_after_it_returns_none_twice(
    engine: Engine, notifications: Notifications, hooks: HookReceiver, smtp: SmtpReceiver
) -> None:
    store = SqlGrantStore(engine)
    hooks.stop()
    smtp.stop()
    ids = [f"g{n:02d}" for n in range(12)]
    for grant_id in ids:
        store.add(_grant(grant_id), [_event("grant.requested", _grant(grant_id), decision="approval")])
    _drain(notifications)  # every send fails: the cursors stay, with the error and a retry time
    cursors = {c.sink: c for c in SqlCursorStore(engine).cursors()}
    assert cursors[cursor_name("hook")].attempts == 1 and cursors[cursor_name("mail")].attempts == 1
    errors = " ".join(c.last_error or "" for c in cursors.values())
    assert SMTP_PASSWORD not in errors and "/slack" not in errors and "ConnectError" in errors
    hooks.start()
    smtp.start()
    for delivery in notifications.deliveries:  # a clock past the backoff
        delivery.clock = FixedClock(NOW + timedelta(seconds=5))
    _drain(notifications)
    for path in ("/hook", "/slack", "/teams"):
        assert [p.body.get("grant_id") or "" for p in hooks.received(path) if path == "/hook"] == (
            ids if path == "/hook" else []
        )
        assert len(hooks.received(path)) == len(ids)
    assert sorted(m.message["X-Kubejit-Event-Id"] for m in smtp.received()) == sorted(
        p.headers["X-Kubejit-Event-Id"] for p in hooks.received("/hook")
    )
    _drain(notifications)  # nothing new: nothing sent again
    assert len(hooks.received("/hook")) == len(ids) and len(smtp.received()) == len(ids)


def test_a_wrong_smtp_password_is_retried_and_never_shown(
    engine: Engine, hooks: HookReceiver, smtp: SmtpReceiver, smtps: SmtpReceiver, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TEST_TEAMS_URL", hooks.url("/teams"))
    settings = _settings(hooks, smtp, smtps, tmp_path, mail_timeout=1)
    (tmp_path / "smtp-password").write_text("wrong-password-value")
    built = Notifications.build(
        settings, cursors=SqlCursorStore(engine), clock=FixedClock(NOW), public_url=PUBLIC,
        lookup=grant_lookup(SqlGrantStore(engine).get),
    )  # fmt: skip
    try:
        SqlGrantStore(engine).add(_grant("g4"), [_event("grant.approved", _grant("g4"))])
        _drain(built)
    finally:
        built.close()
    cursor = next(c for c in SqlCursorStore(engine).cursors() if c.sink == cursor_name("mail"))
    assert smtp.auth_failures == 1 and smtp.received() == []
    # aiosmtpd hangs up after the refused AUTH: smtplib sees the disconnect, not the 535.
    assert cursor.last_error is not None and f"SMTP to localhost:{smtp.port} failed" in cursor.last_error
    assert cursor.attempts == 1 and cursor.delivered_seq == 0
    assert "wrong-password-value" not in cursor.last_error


def test_a_new_channel_is_not_sent_the_history(
    engine: Engine, hooks: HookReceiver, smtp: SmtpReceiver, smtps: SmtpReceiver, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TEST_TEAMS_URL", hooks.url("/teams"))
    SqlGrantStore(engine).add(_grant("old"), [_event("grant.requested", _grant("old"), decision="approval")])
    built = Notifications.build(
        _settings(hooks, smtp, smtps, tmp_path), cursors=SqlCursorStore(engine), clock=FixedClock(NOW),
        public_url=PUBLIC, lookup=grant_lookup(SqlGrantStore(engine).get),
    )  # fmt: skip
    try:
        SqlGrantStore(engine).add(
            _grant("new"), [_event("grant.requested", _grant("new"), decision="approval")]
        )
        _drain(built)
    finally:
        built.close()
    assert [p.body["grant_id"] for p in hooks.received("/hook")] == ["new"]


@pytest.fixture
def any_engine(store_url: str) -> Iterator[Engine]:  # noqa: F811 (the imported fixture)
    """SQLite and PostgreSQL (``store_url`` of test_store: a fresh database each)."""
    engine = create_store_engine(store_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_expiring_soon_is_recorded_once_per_grant_end_across_replicas(any_engine: Engine) -> None:
    engine = any_engine
    store = SqlGrantStore(engine)
    end = NOW + timedelta(minutes=4)
    active = _grant("g5", state=GrantState.ACTIVE, activated_at=NOW - timedelta(minutes=56), expires_at=end)
    store.add(active, [])
    store.add(
        _grant("later", state=GrantState.ACTIVE, activated_at=NOW, expires_at=NOW + timedelta(hours=1)), []
    )
    clock = FixedClock(NOW)
    replicas = [SqlExpiryWarnings(engine, clock=clock, window=timedelta(minutes=5)) for _ in range(2)]
    assert [r.warn_due() for r in replicas] == [1, 0]
    assert replicas[0].warn_due() == 0  # a restart or a second sweep records nothing new

    extended = replace(store.get(GrantId("g5")), expires_at=end + timedelta(minutes=30))
    store.save(extended, [])
    assert replicas[1].warn_due() == 0  # the new end is 34 minutes away
    clock.advance(timedelta(minutes=30))
    assert replicas[1].warn_due() == 1 and replicas[0].warn_due() == 0
    warned = [e for e in audit_log.iter_events(engine) if e.action == "grant.expiring_soon"]
    assert [(e.grant_id, e.subject, e.details["seconds_left"]) for e in warned] == [
        ("g5", "alice", 240),
        ("g5", "alice", 240),
    ]


def test_migration_0007_downgrades_to_0006_and_upgrades_again(engine: Engine) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
    inspector = sa.inspect(engine)
    assert current_revision(engine) == "0006" and "grant_expiry_warnings" not in inspector.get_table_names()
    assert "email" not in {c["name"] for c in inspector.get_columns("users")}
    upgrade(engine)
    assert "grant_expiry_warnings" in sa.inspect(engine).get_table_names()


def test_a_grant_write_wakes_the_channel_workers_long_before_their_poll(
    engine: Engine, hooks: HookReceiver, smtp: SmtpReceiver, smtps: SmtpReceiver, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TEST_TEAMS_URL", hooks.url("/teams"))
    settings = _settings(hooks, smtp, smtps, tmp_path).model_copy(update={"delivery_interval_seconds": 3600})
    built = Notifications.build(
        settings, cursors=SqlCursorStore(engine), clock=SystemClock(), public_url=PUBLIC,
        lookup=grant_lookup(SqlGrantStore(engine).get),
    )  # fmt: skip
    wake = WakeSignal()
    store = WakingGrantStore(engine, clock=SystemClock(), wake=wake)
    # An event that notifies nobody, there before the workers start: their first tick moves past it.
    SqlAuditStore(engine).record([AuditEvent(action="broker.started", actor="system", at=NOW)])
    built.start(sweep_interval=3600, wake=wake)
    try:
        eventually(
            lambda: {c.delivered_seq for c in SqlCursorStore(engine).cursors()} == {1},
            what="first ticks done",
        )
        store.add(_grant("g6"), [_event("grant.requested", _grant("g6"), decision="approval")])
        eventually(
            lambda: len(hooks.received("/hook")) == 1 and len(smtp.received()) == 1, what="woken", within=20
        )
    finally:
        built.close()


def test_two_replicas_send_each_notice_once(
    engine: Engine, hooks: HookReceiver, smtp: SmtpReceiver, smtps: SmtpReceiver, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TEST_TEAMS_URL", hooks.url("/teams"))
    settings = _settings(hooks, smtp, smtps, tmp_path).model_copy(update={"delivery_interval_seconds": 0.02})
    replicas = [
        Notifications.build(
            settings,
            cursors=SqlCursorStore(engine),
            clock=SystemClock(),
            public_url=PUBLIC,
            lookup=grant_lookup(SqlGrantStore(engine).get),
        )
        for _ in range(2)
    ]
    wakes = [WakeSignal(), WakeSignal()]
    stores = [WakingGrantStore(engine, clock=SystemClock(), wake=w) for w in wakes]
    for replica, wake in zip(replicas, wakes, strict=True):
        replica.start(sweep_interval=3600, wake=wake)
    ids = [f"r{n:02d}" for n in range(16)]
    try:
        for n, grant_id in enumerate(ids):  # requests land on either replica, as behind a load balancer
            stores[n % 2].add(
                _grant(grant_id), [_event("grant.requested", _grant(grant_id), decision="approval")]
            )
        tail = SqlCursorStore(engine).tail().seq
        eventually(
            lambda: all(c.delivered_seq == tail for c in SqlCursorStore(engine).cursors()),
            what="both caught up",
        )
    finally:
        for replica in replicas:
            replica.close()
    assert sorted(p.body["grant_id"] for p in hooks.received("/hook")) == ids
    assert len(hooks.received("/slack")) == len(ids) and len(smtp.received()) == len(ids)


def test_a_refused_notice_or_unknown_address_is_skipped_and_later_notices_still_go(
    engine: Engine, notifications: Notifications, hooks: HookReceiver, smtp: SmtpReceiver
) -> None:
    store = SqlGrantStore(engine)
    hooks.poison.add("gpoison")
    smtp.unknown = frozenset({"gone@corp.example"})
    store.add(_grant("gpoison"), [_event("grant.requested", _grant("gpoison"), decision="approval")])
    gone = _grant("ggone", requester_person="gone@corp.example")
    store.add(gone, [_event("grant.approved", gone)])
    store.add(_grant("gafter"), [_event("grant.requested", _grant("gafter"), decision="approval")])
    _drain(notifications)
    assert [p.body["grant_id"] for p in hooks.received("/hook")] == ["gafter"]
    assert all(c.attempts == 0 for c in SqlCursorStore(engine).cursors())  # nothing held up
    assert sorted(m.envelope_to for m in smtp.received()) == [("sre@example.com",), ("sre@example.com",)]
