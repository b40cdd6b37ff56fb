"""The audit trail end to end: broker and CLI as processes, real kubectl, the API server's real audit log.

Alice and bob each get a grant (alice's approved by bob and carol), each runs kubectl with their
grant's token; `kubejit audit correlate` over the test cluster's audit log names the right person,
grant, reason and approvers for every request. `who`, `search` and `verify` read the same store.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.kubectl import RedactedToken, kubectl_with_token
from tests.broker_identity import BrokerIdentity
from tests.broker_process import E2E_POLICY, Broker
from tests.polling import poll

pytestmark = pytest.mark.e2e

POLICY = (
    E2E_POLICY
    + """
  - name: sre-view
    groups: [sre]
    clusters: ["*"]
    namespaces: ["e2e-*"]
    roles: [view]
    duration: {default: 1h, max: 4h}
    approval: auto
"""
)


@pytest.fixture
def audited_broker(
    tmp_path: Path, broker_identity: BrokerIdentity, second_broker_identity: BrokerIdentity
) -> Iterator[Broker]:
    running = Broker(tmp_path / "broker", [broker_identity, second_broker_identity], policy=POLICY)
    running.workdir.mkdir()
    running.start()
    yield running
    running.stop()


def audit(broker: Broker, *args: str, check: bool = True) -> Any:
    return broker.cli("root", "audit", *args, "--config", str(broker.workdir / "config.yaml"), check=check)


def correlated(broker: Broker, plane: ControlPlane) -> list[dict[str, Any]]:
    done = audit(broker, "correlate", "--k8s-audit-log", str(plane.audit_log_path), "-o", "json")
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_each_kubectl_request_is_tied_to_its_person_grant_reason_and_approvers(
    audited_broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]]
) -> None:
    broker = audited_broker
    (ns,) = namespaces(control_plane, 1)
    broker.login("alice", "bob", "carol")
    alice = broker.json(
        "alice", "request", "-c", control_plane.name, "-n", ns, "-r", "admin", "--reason", "INC-42 payments"
    )
    for approver in ("bob", "carol"):
        broker.cli(approver, "approve", alice["id"])
    bob = broker.json(
        "bob", "request", "-c", control_plane.name, "-n", ns, "-r", "view", "--reason", "audit check"
    )
    tokens = {
        "alice": RedactedToken(broker.grant_token("alice", alice["id"])),
        "bob": RedactedToken(broker.grant_token("bob", bob["id"])),
    }
    did = {"alice": ["get", "configmaps"], "bob": ["get", "pods"]}
    for person, args in did.items():
        result = kubectl_with_token(
            [*args, "-n", ns],
            server=control_plane.server,
            ca_path=control_plane.ca_path,
            token=tokens[person],
        )
        assert result.ok, result.stderr

    wanted = {("alice", alice["id"], "configmaps"), ("bob", bob["id"], "pods")}

    def listed() -> list[dict[str, Any]]:
        return [r for r in correlated(broker, control_plane) if r["namespace"] == ns and r["verb"] == "list"]

    rows = poll(
        listed, lambda rows: {(r["person"], r["grant_id"], r["resource"]) for r in rows} >= wanted, within=30
    )
    by_person = {r["person"]: r for r in rows}
    assert {(r["person"], r["grant_id"], r["resource"]) for r in rows} == wanted, rows
    assert by_person["alice"]["reason"] == "INC-42 payments"
    assert by_person["alice"]["approvers"] == ["bob", "carol"]
    assert by_person["bob"]["approvers"] == [] and by_person["bob"]["reason"] == "audit check"
    assert all(r["matched_by"] == "jti" and r["code"] == 200 for r in rows)

    table = audit(broker, "correlate", "--k8s-audit-log", str(control_plane.audit_log_path)).stdout
    assert "INC-42 payments" in table and "bob, carol" in table

    who = broker.json("root", "audit", "who", "-c", control_plane.name, "-n", ns, "--since", "1h",
                      "--k8s-audit-log", str(control_plane.audit_log_path),
                      "--config", str(broker.workdir / "config.yaml"))  # fmt: skip
    assert {(w["person"], w["grant_id"]) for w in who} == {("alice", alice["id"]), ("bob", bob["id"])}
    assert any(k.startswith("list configmaps") for k in next(w for w in who if w["person"] == "alice")["did"])

    found = audit(broker, "search", "--person", "alice", "--namespace", ns, "-o", "csv").stdout
    rows_csv = list(csv.DictReader(io.StringIO(found)))
    actions = {r["action"] for r in rows_csv}
    assert {"policy.decided", "grant.requested", "grant.activated", "token.minted"} <= actions
    assert all(
        r["source_ip"] == "127.0.0.1" and r["user_agent"]
        for r in rows_csv
        if r["action"] != "grant.activated"
    )
    assert "auth.login" in {r["action"] for r in list(csv.DictReader(io.StringIO(
        audit(broker, "search", "--person", "alice", "--action", "auth.login", "-o", "csv").stdout)))}  # fmt: skip

    verified = audit(broker, "verify", "-o", "json")
    assert json.loads(verified.stdout)["data"]["ok"] is True
