"""Audit delivery from a real broker process: grants made while the receivers are down all arrive
once they are back, in order, none twice after de-duplication by event id; `kubejit audit status`
shows the lag; with audit.failClosed a grant is not activated while a required sink is behind.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightkube import Client

from kubejit.store import audit_log
from kubejit.store.engine import create_store_engine
from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.rsyslog import RsyslogReceiver
from tests.broker_identity import BrokerIdentity
from tests.broker_process import KUBEJIT, Broker
from tests.e2e.conftest import owned_objects
from tests.integration.test_audit_delivery import (
    HEC_TOKEN,
    HMAC_KEY,
    HttpReceiver,
    file_seqs,
    syslog_seqs,
    wait_for,
)

pytestmark = pytest.mark.e2e
HEC = "/services/collector/event"


@dataclass
class AuditBroker(Broker):
    """The e2e broker with an ``audit:`` section in its config (``extra_config``)."""

    def env_for(self, user: str | None = None) -> dict[str, str]:
        return {**super().env_for(user), "TEST_HEC_TOKEN": HEC_TOKEN}

    def status(self) -> dict[str, dict[str, Any]]:
        done = subprocess.run(
            [KUBEJIT, "audit", "status", "--config", str(self.workdir / "config.yaml"), "-o", "json"],
            capture_output=True, text=True, timeout=60, env=self.env_for(),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return {row["sink"]: row for row in json.loads(done.stdout)["data"]}

    def stored(self) -> list[tuple[str, int]]:
        """(event id, seq) of every event in the broker's store, in order."""
        engine = create_store_engine(f"sqlite:///{self.workdir / 'kubejit.db'}")
        try:
            return [(e.event_id, e.seq) for e in audit_log.iter_events(engine)]
        finally:
            engine.dispose()


def metric(text: str, name: str, sink: str) -> float:
    prefix = f'{name}{{sink="{sink}"}} '
    return float(next(line for line in text.splitlines() if line.startswith(prefix))[len(prefix) :])


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[tuple[RsyslogReceiver, HttpReceiver]]:
    rsyslog = RsyslogReceiver(tmp_path / "rsyslog").start()
    http = HttpReceiver().start()
    yield rsyslog, http
    http.stop()
    rsyslog.stop()


@pytest.fixture
def make_broker(tmp_path: Path, broker_identity: BrokerIdentity) -> Iterator[Callable[..., AuditBroker]]:
    started: list[AuditBroker] = []

    def make(audit: dict[str, Any]) -> AuditBroker:
        broker = AuditBroker(tmp_path / "broker", [broker_identity], extra_config={"audit": audit})
        broker.workdir.mkdir()
        (broker.workdir / "hmac.key").write_bytes(HMAC_KEY)
        started.append(broker.start())
        return broker

    yield make
    for broker in started:
        broker.stop()


def test_grants_made_while_receivers_are_down_all_arrive_in_order_once_they_are_back(
    make_broker: Callable[..., AuditBroker],
    receivers: tuple[RsyslogReceiver, HttpReceiver],
    control_plane: ControlPlane,
    namespaces: Callable[..., list[str]],
) -> None:
    rsyslog, http = receivers
    broker = make_broker(
        {
            "deliveryIntervalSeconds": 0.1,
            "retry": {"initialSeconds": 0.2, "maxSeconds": 1},
            "sinks": [
                {"name": "jsonl", "type": "file", "path": "audit.jsonl"},
                {
                    "name": "syslog-tcp",
                    "type": "syslog",
                    "transport": "tcp",
                    "host": "127.0.0.1",
                    "port": rsyslog.tcp_port,
                    "appName": "kj-tcp",
                },
                {
                    "name": "syslog-tls",
                    "type": "syslog",
                    "transport": "tls",
                    "host": "localhost",
                    "port": rsyslog.tls_port,
                    "caFile": str(rsyslog.ca_path),
                    "appName": "kj-tls",
                },
                {
                    "name": "webhook",
                    "type": "webhook",
                    "url": f"{http.url}/hook",
                    "hmacKey": {"fromFile": "hmac.key"},
                },
                {
                    "name": "splunk",
                    "type": "splunkHec",
                    "url": http.url,
                    "token": {"fromEnv": "TEST_HEC_TOKEN"},
                },
            ],
        }
    )
    received: dict[str, Callable[[], list[int]]] = {
        "jsonl": lambda: file_seqs(broker.workdir / "audit.jsonl"),
        "syslog-tcp": lambda: syslog_seqs(rsyslog.messages(), app="kj-tcp"),
        "syslog-tls": lambda: syslog_seqs(rsyslog.messages(), app="kj-tls"),
        "webhook": lambda: http.seqs("/hook"),
        "splunk": lambda: http.seqs(HEC),
    }

    def all_arrived() -> bool:
        everything = [seq for _, seq in broker.stored()]
        return all(seqs() == everything for seqs in received.values())

    ns1, ns2 = namespaces(control_plane, 2)
    broker.login("alice")
    first = broker.json(
        "alice", "request", "-c", control_plane.name, "-n", ns1, "-r", "view", "--reason", "r1"
    )
    wait_for(all_arrived, what="the first grant's events at every receiver")

    rsyslog.stop()
    http.stop()
    second = broker.json(
        "alice", "request", "-c", control_plane.name, "-n", ns2, "-r", "edit", "--reason", "r2"
    )
    broker.json("alice", "revoke", first["id"], "--reason", "done")
    assert second["state"] == "active"
    down = ("syslog-tcp", "syslog-tls", "webhook", "splunk")
    wait_for(lambda: all(broker.status()[s]["attempts"] >= 2 for s in down), what="failed deliveries")
    status = broker.status()
    for sink in down:
        assert status[sink]["lag_events"] > 0 and status[sink]["lag_seconds"] > 0, status[sink]
        assert status[sink]["last_error"] and status[sink]["next_attempt_at"], status[sink]
    assert status["jsonl"]["lag_events"] == 0 and status["jsonl"]["last_error"] is None
    metrics = httpx.get(f"{broker.url}/metrics", timeout=10).text
    assert metric(metrics, "kubejit_audit_sink_lag_events", "webhook") >= status["webhook"]["lag_events"]
    assert metric(metrics, "kubejit_audit_sink_failed_attempts", "splunk") >= 2
    assert metric(metrics, "kubejit_audit_sink_lag_events", "jsonl") == 0

    rsyslog.start()
    http.start()
    wait_for(all_arrived, what="every event at every receiver after the outage")
    stored = broker.stored()
    raw = [e["metadata"]["uid"] for batch in http.batches["/hook"] for e in batch]
    assert set(raw) == {event_id for event_id, _ in stored}  # same ids, nothing invented
    actions = [e["unmapped"]["kubejit"]["action"] for batch in http.batches[HEC] for e in batch]
    assert actions.count("grant.activated") == 2 and "grant.revoked" in actions
    wait_for(  # the broker may have recorded more since (its checkpoints, the reconciler)
        lambda: all(row["lag_events"] == 0 and row["attempts"] == 0 for row in broker.status().values()),
        what="audit status to show every sink caught up",
    )
    assert not http.refused
    broker_log = broker.log_path.read_text()
    assert HMAC_KEY.decode() not in broker_log and HEC_TOKEN not in broker_log
    assert "audit sink webhook" in broker_log  # the failures were logged, without the secrets


def test_fail_closed_refuses_activation_until_the_required_sink_has_the_record(
    make_broker: Callable[..., AuditBroker],
    control_plane: ControlPlane,
    namespaces: Callable[..., list[str]],
    admin_client: Client,
) -> None:
    http = HttpReceiver()  # not started: the SIEM is down
    broker = make_broker(
        {
            "failClosed": True,
            "requiredWaitSeconds": 1,
            "deliveryIntervalSeconds": 0.1,
            "retry": {"initialSeconds": 0.2, "maxSeconds": 0.5},
            "sinks": [
                {
                    "name": "siem",
                    "type": "webhook",
                    "url": f"{http.url}/hook",
                    "required": True,
                    "hmacKey": {"fromFile": "hmac.key"},
                },
            ],
        }
    )
    (ns,) = namespaces(control_plane, 1)
    broker.login("alice")
    refused = broker.cli(
        "alice", "request", "-c", control_plane.name, "-n", ns, "-r", "view", "--reason", "x", check=False
    )
    assert refused.returncode == 11, refused.stderr
    assert "was not activated" in refused.stderr and "siem" in refused.stderr
    (pending,) = broker.json("alice", "grants")
    assert pending["state"] == "approved"
    assert owned_objects(admin_client, pending["id"]) == []

    http.start()
    try:
        wait_for(
            lambda: broker.json("alice", "grants")[0]["state"] == "active",
            what="the reconciler to activate the grant once the sink caught up",
        )
        assert len(owned_objects(admin_client, pending["id"])) == 2
        wait_for(lambda: http.seqs("/hook") == [s for _, s in broker.stored()], what="every event")
    finally:
        http.stop()
