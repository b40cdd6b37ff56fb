"""``logging.format: json``: every line the broker writes is one JSON object with time, level, logger
and message; lines about a request carry its ``X-Request-ID`` (the caller's, when valid) and lines
about a grant its id."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubejit.testing.controlplane import ControlPlane
from tests.broker_identity import BrokerIdentity
from tests.broker_process import Broker
from tests.lone_broker import LoneBroker
from tests.polling import poll

JSON = {"logging": {"format": "json"}}


def lines(log: Path) -> list[dict[str, Any]]:
    """Every line of the log, parsed; a line that is not a JSON object with the four keys fails."""
    parsed = []
    for number, line in enumerate(log.read_text().splitlines(), 1):
        entry = json.loads(line)
        assert isinstance(entry, dict), f"line {number}: {line}"
        assert {"time", "level", "logger", "message"} <= entry.keys(), f"line {number}: {line}"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["time"]), line
        parsed.append(entry)
    return parsed


@pytest.fixture
def json_broker(tmp_path: Path, broker_identity: BrokerIdentity) -> Iterator[Broker]:
    running = Broker(tmp_path / "broker", [broker_identity], extra_config=JSON)
    running.workdir.mkdir()
    running.start()
    yield running
    running.stop()


def test_a_grant_served_with_json_logs_leaves_only_json_lines_naming_request_and_grant(
    json_broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]]
) -> None:
    (ns,) = namespaces(control_plane, 1)
    json_broker.login("alice")
    grant = json_broker.json("alice", "request", "-c", control_plane.name, "-n", ns, "-r", "edit")
    headers = {
        "authorization": f"Bearer {json_broker.session_token('alice')}",
        "x-request-id": "e2e-revoke.1",
    }
    answer = httpx.post(
        f"{json_broker.url}/v1/grants/{grant['id']}/revoke", json={"reason": "done"}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-request-id"] == "e2e-revoke.1"

    def revoke_logged(entries: list[dict[str, Any]]) -> bool:
        return any(e.get("request_id") == "e2e-revoke.1" for e in entries)

    entries = poll(lambda: lines(json_broker.log_path), revoke_logged, within=30)
    about = [e for e in entries if e.get("request_id") == "e2e-revoke.1"]
    assert all(e.get("grant_id") == grant["id"] for e in about), about
    (access,) = [e for e in about if e["logger"] == "kubejit.access"]
    assert access["message"].startswith("POST /v1/grants/{grant_id}/revoke 200 "), access
    assert any(e["message"].startswith("kubejit broker listening on") for e in entries)
    assert all(e["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"} for e in entries)


def test_an_unacceptable_request_id_is_replaced_by_a_fresh_one(tmp_path: Path) -> None:
    broker = LoneBroker(tmp_path, extra_config=JSON).start()
    try:
        fresh = []
        for given in ("a b", "x" * 129, "<script>", ""):
            answer = httpx.get(f"{broker.url}/readyz", headers={"x-request-id": given}, timeout=10)
            fresh.append(answer.headers["x-request-id"])
            assert re.fullmatch(r"[0-9a-f]{32}", fresh[-1]), (given, fresh[-1])
        kept = httpx.get(f"{broker.url}/livez", headers={"x-request-id": "ok-1:2"}, timeout=10)
        assert kept.headers["x-request-id"] == "ok-1:2"
        assert len(set(fresh)) == len(fresh)
        entries = poll(
            lambda: lines(broker.log_path),
            lambda es: {e.get("request_id") for e in es} >= {*fresh, "ok-1:2"},
            within=30,
        )
        assert not any("<script>" in json.dumps(e) or "x" * 129 in json.dumps(e) for e in entries)
    finally:
        broker.stop()
