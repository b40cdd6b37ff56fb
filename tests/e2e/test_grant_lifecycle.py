"""The grant lifecycle end to end: broker and CLI as processes, real kubectl, real API servers."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

from lightkube import Client

from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.kubectl import KubectlResult, RedactedToken, kubectl_with_token
from tests.broker_process import KUBEJIT, Broker
from tests.e2e.conftest import owned_objects
from tests.polling import eventually


def kubectl(plane: ControlPlane, token: str, *args: str) -> KubectlResult:
    return kubectl_with_token(list(args), server=plane.server, ca_path=plane.ca_path, token=token)


def test_auto_grant_works_only_where_granted_and_ends_on_revoke(
    broker: Broker,
    control_plane: ControlPlane,
    second_control_plane: ControlPlane,
    namespaces: Callable[..., list[str]],
    admin_client: Client,
) -> None:
    granted, other = namespaces(control_plane, 2)
    broker.login("alice")
    grant = broker.json(
        "alice", "request", "-c", control_plane.name, "-n", granted, "-r", "view", "--reason", "e2e"
    )
    assert grant["state"] == "active" and grant["rule"] == "e2e-auto"
    token = RedactedToken(broker.grant_token("alice", grant["id"]))

    assert kubectl(control_plane, token, "get", "pods", "-n", granted).ok
    assert kubectl(control_plane, token, "get", "pods", "-n", other).forbidden
    assert kubectl(control_plane, token, "create", "configmap", "x", "-n", granted).forbidden  # beyond view
    assert kubectl(control_plane, token, "get", "secrets", "-n", granted).forbidden
    assert kubectl(second_control_plane, token, "get", "pods", "-n", granted).unauthorized
    assert len(owned_objects(admin_client, grant["id"])) == 2  # ServiceAccount + RoleBinding

    ended = broker.json("alice", "revoke", grant["id"], "--reason", "done")
    assert ended["state"] == "revoked"
    assert owned_objects(admin_client, grant["id"]) == []
    eventually(
        lambda: kubectl(control_plane, token, "get", "pods", "-n", granted).unauthorized,
        what="token rejected",
    )


def test_grant_expires_and_leaves_nothing(
    broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]], admin_client: Client
) -> None:
    (ns,) = namespaces(control_plane, 1)
    broker.login("alice")
    grant = broker.json("alice", "request", "-c", control_plane.name, "-n", ns, "-r", "edit", "--for", "4s")
    token = RedactedToken(broker.grant_token("alice", grant["id"]))
    assert kubectl(control_plane, token, "create", "configmap", "made-by-alice", "-n", ns).ok
    eventually(lambda: owned_objects(admin_client, grant["id"]) == [], what="objects deleted at expiry")
    assert broker.json("alice", "grants", "--state", "expired")[0]["id"] == grant["id"]
    eventually(
        lambda: kubectl(control_plane, token, "get", "pods", "-n", ns).unauthorized, what="token rejected"
    )


def test_two_approvers_never_the_requester_and_denial_reason(
    broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]], admin_client: Client
) -> None:
    (ns,) = namespaces(control_plane, 1)
    broker.login("alice", "bob", "carol")
    args = ("request", "-c", control_plane.name, "-n", ns, "-r", "admin", "--reason", "migration")
    pending = broker.json("alice", *args)
    assert pending["state"] == "pending" and owned_objects(admin_client, pending["id"]) == []

    refused = broker.cli("alice", "approve", pending["id"], check=False)
    assert (
        refused.returncode == 3 and "your own request" in refused.stderr and "Traceback" not in refused.stderr
    )
    assert broker.json("bob", "approve", pending["id"])["state"] == "pending"
    twice = broker.cli("bob", "approve", pending["id"], check=False)
    assert twice.returncode == 3 and "already approved" in twice.stderr
    active = broker.json("carol", "approve", pending["id"], "--comment", "ok")
    assert active["state"] == "active" and [a["approver"] for a in active["approvals"]] == ["bob", "carol"]
    assert len(owned_objects(admin_client, pending["id"])) == 2

    second = broker.json("alice", *args)
    denied = broker.json("bob", "deny", second["id"], "--reason", "use a maintenance window")
    assert denied["state"] == "denied" and denied["end_reason"] == "use a maintenance window"
    # Deny after approval ends access too.
    assert broker.json("bob", "deny", active["id"], "--reason", "changed my mind")["state"] == "denied"
    assert owned_objects(admin_client, active["id"]) == []


def test_requests_outside_policy_are_refused_with_their_rule_and_create_nothing(
    broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]], admin_client: Client
) -> None:
    (ns,) = namespaces(control_plane, 1)
    broker.login("alice")
    before = owned_objects(admin_client)
    base = ("request", "-c", control_plane.name, "-r", "view")
    cases = [
        ((*base, "-n", "kube-system"), 3, "default-deny"),
        (("request", "-c", control_plane.name, "-n", ns, "-r", "cluster-admin"), 3, "default-deny"),
        ((*base, "-n", ns, "--for", "10h"), 3, "e2e-auto"),
        (("request", "-c", control_plane.name, "-n", ns, "-r", "admin"), 3, "reason"),
        ((*base[:2], "nowhere", *base[3:], "-n", ns), 5, "unknown cluster"),
        ((*base, "-n", ns, "--for", "-5m"), 2, "invalid duration"),
        ((*base, "-n", "Bad_Name"), 2, "namespaces"),
    ]
    for args, code, words in cases:
        done = broker.cli("alice", *args, check=False)
        assert done.returncode == code, (args, done.returncode, done.stderr)
        assert words in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
    assert owned_objects(admin_client) == before
    assert broker.json("alice", "grants") == []


def test_offboarding_revokes_everything_a_person_holds(
    broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]], admin_client: Client
) -> None:
    ns1, ns2 = namespaces(control_plane, 2)
    broker.login("alice", "root", "bob")
    ids = [
        broker.json("alice", "request", "-c", control_plane.name, "-n", ns, "-r", "view")["id"]
        for ns in (ns1, ns2)
    ]
    refused = broker.cli("bob", "revoke", "--user", "alice", check=False)
    assert refused.returncode == 3 and "adminGroups" in refused.stderr
    token = RedactedToken(broker.grant_token("alice", ids[0]))
    done = broker.json("root", "revoke", "--user", "alice", "--reason", "left the company")
    assert sorted(g["id"] for g in done["ended"]) == sorted(ids) and done["skipped"] == []
    assert all(owned_objects(admin_client, gid) == [] for gid in ids)
    eventually(
        lambda: kubectl(control_plane, token, "get", "pods", "-n", ns1).unauthorized, what="token rejected"
    )
    lock_id = done["lock"]["id"]

    # Sticky: alice's login (a still-valid token) is refused at authentication, on every route.
    request = ("request", "-c", control_plane.name, "-n", ns1, "-r", "view")
    refused = broker.cli("alice", *request, check=False)
    assert refused.returncode == 3 and f"locked by lock {lock_id}" in refused.stderr, refused.stderr
    assert "left the company" in refused.stderr and "kubejit unlock" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert broker.cli("alice", "grants", check=False).returncode == 3
    again = broker.cli("root", "revoke", "--user", "alice")
    assert "nothing to end" in again.stdout and f"locked by {lock_id} (already)" in again.stdout

    assert [lk["id"] for lk in broker.json("root", "locks")] == [lock_id]
    broker.cli("root", "unlock", lock_id)
    assert broker.json("alice", *request)["state"] == "active"


def test_request_wait_returns_once_approved(
    broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]]
) -> None:
    (ns,) = namespaces(control_plane, 1)
    broker.login("alice", "bob", "carol")
    args = [
        "request",
        "-c",
        control_plane.name,
        "-n",
        ns,
        "-r",
        "admin",
        "--reason",
        "deploy",
        "--wait",
        "-o",
        "json",
    ]
    waiting = subprocess.Popen(
        [KUBEJIT, *args],
        env=broker.env_for("alice"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    eventually(lambda: bool(broker.json("bob", "requests")["waiting_for_me"]), what="request visible to bob")
    (pending,) = broker.json("bob", "requests")["waiting_for_me"]
    broker.cli("bob", "approve", pending["id"])
    broker.cli("carol", "approve", pending["id"])
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert json.loads(out)["data"]["state"] == "active"
