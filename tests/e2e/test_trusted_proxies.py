"""Proxy headers against a real broker process: believed only from ``broker.trustedProxies``.

A process on the broker's host that sends ``X-Forwarded-For`` must not pick its source address:
with a made-up one it would get a fresh rate-limit bucket per request and write that address into
the audit trail. uvicorn's own default trusts 127.0.0.1, so this runs the broker on loopback.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.broker_identity import BrokerIdentity
from tests.broker_process import Broker

pytestmark = pytest.mark.e2e

#: Small allowances, so a few requests show which bucket each one was counted in.
LIMITS = {"perSourcePerMinute": 3, "authFailuresPerSourcePerMinute": 2, "authFailureSummarySeconds": 0}

StartBroker = Callable[[list[str]], Broker]


@pytest.fixture
def start_broker(tmp_path: Path, broker_identity: BrokerIdentity) -> Iterator[StartBroker]:
    started: list[Broker] = []

    def start(trusted_proxies: list[str]) -> Broker:
        proxies = {"trustedProxies": trusted_proxies} if trusted_proxies else {}
        broker = Broker(
            tmp_path / f"broker-{len(started)}",
            [broker_identity],
            extra_config={"broker": {"rateLimits": LIMITS, **proxies}},
        )
        broker.workdir.mkdir()
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.stop()


def _bad_token_from(http: httpx.Client, claimed: str) -> httpx.Response:
    headers = {"authorization": "Bearer not-a-jwt", "x-forwarded-for": claimed}
    return http.get("/v1/grants", headers=headers)


def _failure_sources(broker: Broker) -> list[str]:
    """The source address of every ``auth.failed`` event, in order, read from the broker's store."""
    with sqlite3.connect(broker.workdir / "kubejit.db") as db:
        rows = db.execute("SELECT details FROM audit_events WHERE action = 'auth.failed' ORDER BY seq")
        return [json.loads(details)["source_ip"] for (details,) in rows.fetchall()]


def test_a_local_process_cannot_claim_another_source_address(start_broker: StartBroker) -> None:
    """No trusted proxies (the default): X-Forwarded-For is ignored, every request is 127.0.0.1's."""
    broker = start_broker([])
    with httpx.Client(base_url=broker.url, timeout=30) as http:
        first, second, third = (_bad_token_from(http, f"192.0.2.{n}") for n in (9, 10, 11))
        fourth = http.get("/v1/login-config", headers={"x-forwarded-for": "192.0.2.12"})
    assert [r.status_code for r in (first, second, third, fourth)] == [401, 401, 429, 429]
    assert "failed authentications from 127.0.0.1" in third.json()["detail"]
    assert "too many requests from 127.0.0.1" in fourth.json()["detail"]  # one per-source bucket
    assert _failure_sources(broker) == ["127.0.0.1"] * 3  # the refused one is recorded too


def test_a_trusted_proxy_names_the_client(start_broker: StartBroker) -> None:
    """trustedProxies: [127.0.0.1]: the address the proxy forwards for is the source, bucket and audit."""
    broker = start_broker(["127.0.0.1"])
    with httpx.Client(base_url=broker.url, timeout=30) as http:
        answers = [_bad_token_from(http, "192.0.2.9") for _ in range(3)]
        other = _bad_token_from(http, "192.0.2.10")
        pages = [
            http.get("/v1/login-config", headers={"x-forwarded-for": ip})
            for ip in ("192.0.2.9", "192.0.2.10")
        ]
    assert [r.status_code for r in (*answers, other, *pages)] == [401, 401, 429, 401, 429, 200]
    assert "failed authentications from 192.0.2.9" in answers[2].json()["detail"]
    assert "too many requests from 192.0.2.9" in pages[0].json()["detail"]
    assert _failure_sources(broker) == ["192.0.2.9"] * 3 + ["192.0.2.10"]
