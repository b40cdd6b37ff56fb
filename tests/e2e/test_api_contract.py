"""The OpenAPI document is the API's contract: schemathesis, every check, against a real broker process.

``st run --checks all`` calls every operation with examples generated from the document (valid and
invalid, plus its coverage and stateful phases), as an admin of the dev issuer so the authenticated
routes answer more than 401. Each answer must be one the document declares: its status, its media
type (problem+json for errors), its headers and its body; 405 must carry ``Allow``; valid input must
not be refused and invalid input must be. The one refusal of valid-looking input that is allowed is a
duration over 31 days in all (tests/e2e/contract_hooks.py). schemathesis' pytest plugin cannot load a
schema from a fixture under this pytest, so the CLI runs as a process, with a fixed seed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from kubejit.testing.controlplane import ControlPlane
from tests.broker_identity import BrokerIdentity
from tests.broker_process import Broker

pytestmark = pytest.mark.e2e

ST = str(Path(sys.executable).with_name("st"))
ROOT = Path(__file__).resolve().parents[2]
#: Small enough for about a minute on a loaded 2-core machine, over all operations and phases.
MAX_EXAMPLES = 10
SEED = 20261203


def _config(path: Path, token: str, *, known: dict[str, list[str]]) -> Path:
    """The admin's token as the document's bearer scheme (so schemathesis knows when it leaves it
    out), and real names and grant ids to draw from often, so operations get past 404. (Namespaces are
    not drawn from a list: schemathesis would repeat one in a list that must hold each once.)"""
    lines = ["[auth.openapi.HTTPBearer]", f'bearer = "{token}"']
    for name, values in known.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}"]
    lines.append("[parameters]")
    for where, name in (
        ("body.cluster", "clusters"),
        ("body.user", "users"),
        ("path.grant_id", "grants"),
    ):
        lines.append(f'"{where}" = {{ dictionary = "{name}", probability = 0.6 }}')
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def _login(broker: Broker, user: str) -> dict[str, str]:
    answer = httpx.post(f"{broker.url}/v1/dev/login", json={"user": user}, timeout=30)
    answer.raise_for_status()
    return {"authorization": f"Bearer {answer.json()['token']}"}


def _grants(broker: Broker, namespace: str, cluster: str) -> list[str]:
    """An active grant and a pending one of alice's, for the operations on one grant."""
    alice = _login(broker, "alice")
    ids = []
    for role, reason in (("view", ""), ("admin", "contract test")):
        body = {"cluster": cluster, "namespaces": [namespace], "role": role, "reason": reason}
        answer = httpx.post(f"{broker.url}/v1/grants", json=body, headers=alice, timeout=60)
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    return ids


def test_every_answer_is_the_documented_one(
    tmp_path: Path,
    broker_identity: BrokerIdentity,
    second_broker_identity: BrokerIdentity,
    namespaces: Callable[[ControlPlane, int], list[str]],
) -> None:
    broker = Broker(tmp_path / "broker", [broker_identity, second_broker_identity])
    broker.workdir.mkdir()
    broker.start()
    try:
        cluster = broker_identity.plane.name
        [namespace] = namespaces(broker_identity.plane, 1)
        known = {
            "clusters": [cluster],
            "users": ["alice", "bob"],
            "grants": _grants(broker, namespace, cluster),
        }
        token = _login(broker, "root")["authorization"].removeprefix("Bearer ")
        config = _config(tmp_path / "schemathesis.toml", token, known=known)
        report = tmp_path / "report.json"
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.e2e.contract_hooks",
            "PYTHONPATH": str(ROOT),
            "NO_COLOR": "1",
        }
        options = (
            "--checks all --exclude-checks positive_data_acceptance --workers 1 --generation-database none"
        )
        done = subprocess.run(
            [
                *(ST, "--config-file", str(config), "run", f"{broker.url}/openapi.json"),
                *options.split(),
                *("--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED)),
                *("--report", "json", "--report-json-path", str(report)),
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        broker.stop()
    summary = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, summary
    run = json.loads(report.read_text())
    cases = run["test_cases"]
    assert cases["with_failures"] == 0 and not run["failures"] and not run["errors"], summary
    assert run["operations"]["tested"] == run["operations"]["total"] >= 15
    # With the admin's token schemathesis got past authentication (valid requests were answered 2xx).
    accepted = run["valid_rates"]["GET /v1/whoami"]
    assert sum(phase["accepted"] for phase in accepted.values()) > 0, accepted
    print(f"\nschemathesis: {cases['generated']} cases, {cases['with_failures']} with failures, seed {SEED}")
