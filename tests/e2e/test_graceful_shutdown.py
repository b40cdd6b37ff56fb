"""SIGTERM to a real `kubejit serve`: it stops accepting, finishes the request in flight, stops its
workers and hands its audit sink lease back, so the next broker carries on at once.

The request is kept in flight by the fail-closed audit gate: its activation waits until the required
webhook sink has the record, and the receiver holds every batch for a while.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubejit.testing.controlplane import ControlPlane
from tests.broker_identity import BrokerIdentity
from tests.broker_process import Broker
from tests.integration.test_audit_delivery import HMAC_KEY, HttpReceiver
from tests.polling import eventually, poll

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    http = HttpReceiver().start()
    yield http
    http.stop()


@pytest.fixture
def broker(tmp_path: Path, broker_identity: BrokerIdentity, receiver: HttpReceiver) -> Iterator[Broker]:
    (tmp_path / "hmac.key").write_bytes(HMAC_KEY)
    audit = {
        "deliveryIntervalSeconds": 0.1,
        "failClosed": True,
        "requiredWaitSeconds": 60,
        "sinks": [
            {"name": "webhook", "type": "webhook", "url": f"{receiver.url}/hook", "required": True,
             "hmacKey": {"fromFile": str(tmp_path / "hmac.key")}},
        ],
    }  # fmt: skip
    running = Broker(tmp_path / "broker", [broker_identity], extra_config={"audit": audit})
    running.workdir.mkdir()
    running.start()
    yield running
    running.stop()


def _cursor(broker: Broker) -> tuple[int, str | None]:
    with sqlite3.connect(f"file:{broker.workdir / 'kubejit.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT delivered_seq, lease_owner FROM audit_sink_cursors").fetchone()
    return int(row[0]), row[1]


def _tail(broker: Broker) -> int:
    with sqlite3.connect(f"file:{broker.workdir / 'kubejit.db'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT max(seq) FROM audit_events").fetchone()[0])


def _last_action(broker: Broker) -> str:
    with sqlite3.connect(f"file:{broker.workdir / 'kubejit.db'}?mode=ro", uri=True) as db:
        return str(db.execute("SELECT action FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()[0])


def _refused(url: str) -> bool:
    try:
        httpx.get(f"{url}/livez", timeout=2)
    except httpx.TransportError:
        return True
    return False


def test_sigterm_finishes_the_request_in_flight_and_hands_the_sink_over(
    broker: Broker,
    receiver: HttpReceiver,
    control_plane: ControlPlane,
    namespaces: Any,
) -> None:
    namespace = namespaces(control_plane, 1)[0]
    token = httpx.post(f"{broker.url}/v1/dev/login", json={"user": "alice"}, timeout=30).json()["token"]
    eventually(lambda: _cursor(broker)[0] == _tail(broker), what="the sink caught up", every=0.1)
    receiver.hold = 2.0  # from now on each batch takes two seconds to be acknowledged
    answers: list[httpx.Response] = []
    body = {"cluster": control_plane.name, "namespaces": [namespace], "role": "view"}
    request = threading.Thread(
        target=lambda: answers.append(
            httpx.post(
                f"{broker.url}/v1/grants",
                json=body,
                headers={"authorization": f"Bearer {token}"},
                timeout=120,
            )
        )
    )
    request.start()
    # The grant's record is on its way to the sink, so its activation is waiting: the request is in flight.
    eventually(lambda: receiver.busy.get("/hook", 0) > 0, what="a batch in flight", every=0.02)
    assert broker.process is not None
    broker.process.send_signal(signal.SIGTERM)

    assert poll(lambda: _refused(broker.url), bool, within=30, every=0.05)  # no new connections
    request.join()
    assert [a.status_code for a in answers] == [201], [a.text for a in answers]
    assert answers[0].json()["state"] == "active"  # finished, not cut: activated after the sink had it
    # uvicorn raises SIGTERM again once it has shut down, so the exit status says what ended it.
    assert broker.process.wait(timeout=60) == -signal.SIGTERM
    delivered, lease = _cursor(broker)
    assert lease is None  # handed back at shutdown, not left to run out
    assert _last_action(broker) == "audit.checkpoint"  # the shutdown ran to its end: the final signature
    log = broker.log_path.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]

    receiver.hold = 0
    broker.start()  # at once: nothing of the first process is left holding the database or the sink
    eventually(lambda: _cursor(broker)[0] == _tail(broker) > delivered, what="the next broker delivers")
