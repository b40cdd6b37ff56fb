"""Notifications from a real broker process to real receivers (SMTP with STARTTLS + AUTH, HTTP).

A request needing approval reaches the approvers' channels; the approvals reach the requester by
email; receivers that are down (and a broker killed meanwhile) get every notice once they are back,
none twice; a hostile reason arrives escaped; no token or secret is in any message.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubejit.testing.controlplane import ControlPlane
from tests.broker_identity import BrokerIdentity
from tests.broker_process import KUBEJIT, Broker
from tests.notify_receivers import NOTIFY_HMAC_KEY, SMTP_PASSWORD, SMTP_USER, HookReceiver, SmtpReceiver
from tests.polling import eventually

pytestmark = pytest.mark.e2e

HOSTILE = "<!channel> <script>alert(1)</script> *bold* [x](https://evil.example) & done"


class NotifyBroker(Broker):
    def env_for(self, user: str | None = None) -> dict[str, str]:
        return {**super().env_for(user), "TEST_SMTP_PASSWORD": SMTP_PASSWORD}


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


def notifications_config(hooks: HookReceiver, smtp: SmtpReceiver) -> dict[str, Any]:
    return {
        "deliveryIntervalSeconds": 0.1,
        "expiringSoonMinutes": 90,  # longer than the 1h grants: each is warned about once it is active
        "retry": {"initialSeconds": 0.2, "maxSeconds": 1},
        "channels": [
            {"name": "hook", "type": "webhook", "url": hooks.url("/hook"), "hmacKey": {"fromFile": "hmac.key"}},
            {"name": "sre-slack", "type": "slack", "url": {"fromFile": "slack-url"}},
            {
                "name": "mail", "type": "email", "host": "localhost", "port": smtp.port,
                "caFile": str(smtp.ca_path), "username": SMTP_USER,
                "password": {"fromEnv": "TEST_SMTP_PASSWORD"}, "from": "kubejit@example.com",
            },
        ],
        "routes": [
            {"channels": ["hook", "sre-slack", "mail"], "approverGroups": ["sre"], "events": ["needsApproval"],
             "to": ["sre@example.com"]},
        ],
        "requesterEmail": {"channel": "mail"},
        "emails": {"alice": "alice@example.com"},
    }  # fmt: skip


@pytest.fixture
def make_broker(
    tmp_path: Path, broker_identity: BrokerIdentity, hooks: HookReceiver, smtp: SmtpReceiver
) -> Iterator[Callable[[], NotifyBroker]]:
    started: list[NotifyBroker] = []

    def make() -> NotifyBroker:
        broker = NotifyBroker(
            tmp_path / "broker",
            [broker_identity],
            extra_config={"notifications": notifications_config(hooks, smtp)},
        )
        broker.workdir.mkdir()
        (broker.workdir / "hmac.key").write_bytes(NOTIFY_HMAC_KEY)
        (broker.workdir / "slack-url").write_text(hooks.url("/slack"))
        started.append(broker.start())
        return broker

    yield make
    for broker in started:
        broker.stop()


def channel_status(broker: Broker) -> dict[str, dict[str, Any]]:
    """`kubejit audit status -o json`: notification channels are listed as notify:<name>."""
    done = subprocess.run(
        [KUBEJIT, "audit", "status", "--config", str(broker.workdir / "config.yaml"), "-o", "json"],
        capture_output=True, text=True, timeout=60, env=broker.env_for(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {row["sink"]: row for row in json.loads(done.stdout)["data"]}


def caught_up(broker: Broker) -> bool:
    rows = channel_status(broker)
    return set(rows) == {"notify:hook", "notify:sre-slack", "notify:mail"} and all(
        r["lag_events"] == 0 for r in rows.values()
    )


def _everything_sent(hooks: HookReceiver, smtp: SmtpReceiver) -> str:
    return "\n".join(
        [*(p.raw.decode() for p in hooks.posts), *(m.message.as_string() for m in smtp.received())]
    )


def test_approvers_are_told_then_the_requester_and_no_token_is_in_any_message(
    make_broker: Callable[[], NotifyBroker],
    hooks: HookReceiver,
    smtp: SmtpReceiver,
    control_plane: ControlPlane,
    namespaces: Callable[..., list[str]],
) -> None:
    broker = make_broker()
    (ns,) = namespaces(control_plane, 1)
    broker.login("alice", "bob", "carol")
    grant = broker.json(
        "alice", "request", "-c", control_plane.name, "-n", ns, "-r", "admin", "--reason", HOSTILE
    )
    assert grant["state"] == "pending"
    link = f"{broker.url}/ui/requests/{grant['id']}"

    eventually(lambda: len(hooks.received("/hook")) == 1 and len(hooks.received("/slack")) == 1, what="hooks")
    eventually(lambda: len(smtp.received()) == 1, what="approvers' email")
    [hook], [slack], [mail] = hooks.received("/hook"), hooks.received("/slack"), smtp.received()
    assert hooks.refused == 0 and hook.body["kind"] == "needs_approval" and hook.body["link"] == link
    assert hook.body["facts"]["reason"] == HOSTILE and b"<script>" not in hook.raw
    assert "&lt;!channel&gt;" in json.dumps(slack.body) and "<!channel>" not in json.dumps(slack.body)
    assert mail.envelope_to == ("sre@example.com",) and link in mail.text
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html

    broker.cli("bob", "approve", grant["id"])
    broker.cli("carol", "approve", grant["id"])
    eventually(lambda: len(smtp.received()) == 4, what="approved, activated and expiring soon, to alice")
    to_alice = [m for m in smtp.received() if m.envelope_to == ("alice@example.com",)]
    assert [m.message["Subject"].split(":")[0] for m in to_alice] == [
        "[kubejit] Access request approved",
        "[kubejit] Access grant active",
        "[kubejit] Access grant expiring soon",
    ]
    token = broker.grant_token("alice", grant["id"])
    sent = _everything_sent(hooks, smtp)
    for secret in (token, *(broker.session_token(u) for u in ("alice", "bob", "carol")), SMTP_PASSWORD):
        assert secret not in sent
    assert NOTIFY_HMAC_KEY.decode() not in sent and hooks.url("/slack") not in sent
    assert len(hooks.received("/hook")) == 1  # the approvers' routes carry needsApproval only
    assert len(smtp.received()) == 4  # the sweeper ran many times since: one warning per grant end


def test_receivers_down_across_a_broker_crash_get_every_notice_once_back(
    make_broker: Callable[[], NotifyBroker],
    hooks: HookReceiver,
    smtp: SmtpReceiver,
    control_plane: ControlPlane,
    namespaces: Callable[..., list[str]],
) -> None:
    broker = make_broker()
    (ns,) = namespaces(control_plane, 1)
    broker.login("alice")
    hooks.stop()
    smtp.stop()
    ids = [
        broker.json(
            "alice", "request", "-c", control_plane.name, "-n", ns, "-r", "admin", "--reason", f"r{n}"
        )["id"]
        for n in range(5)
    ]
    eventually(lambda: channel_status(broker)["notify:hook"]["attempts"] > 0, what="the outage shown")
    down = channel_status(broker)
    assert down["notify:hook"]["lag_events"] > 0 and "ConnectError" in down["notify:hook"]["last_error"]
    assert SMTP_PASSWORD not in json.dumps(down) and hooks.url("/slack") not in json.dumps(down)
    broker.kill()  # nothing was delivered, and the process that knew is gone
    broker.start()
    hooks.start()
    smtp.start()
    eventually(
        lambda: len(hooks.received("/hook")) >= 5 and len(smtp.received()) >= 5, what="catch-up", within=60
    )
    eventually(lambda: len(hooks.received("/slack")) >= 5, what="slack catch-up", within=60)
    eventually(lambda: caught_up(broker), what="every channel's cursor at the log's end")
    assert sorted(p.body["grant_id"] for p in hooks.received("/hook")) == sorted(ids)
    assert sorted(json.dumps(p.body) for p in hooks.received("/slack")) == sorted(
        {json.dumps(p.body) for p in hooks.received("/slack")}
    )
    assert len(hooks.received("/slack")) == 5 and len(smtp.received()) == 5
    assert len({m.message["Message-ID"] for m in smtp.received()}) == 5
