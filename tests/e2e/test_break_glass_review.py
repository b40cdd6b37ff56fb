"""Break-glass post-incident review and the request's page link, end to end: the broker and the CLI as
processes, the grant's objects in a real API server. Break-glass access is flagged when it activates,
listed by `kubejit reviews` for its reviewers and admins, cleared by a reviewer's `kubejit review`;
its holder is refused. `kubejit open --print` prints the broker's link to the request's page."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client

from kubejit.testing.controlplane import ControlPlane
from tests.broker_identity import BrokerIdentity
from tests.broker_process import E2E_POLICY, USERS, Broker
from tests.e2e.conftest import owned_objects

pytestmark = pytest.mark.e2e

POLICY = (
    E2E_POLICY
    + """
  - name: e2e-break-glass
    groups: [sre]
    clusters: ["*"]
    namespaces: ["e2e-*"]
    roles: [edit]
    breakGlass: true
    reviewers: [security]
"""
)


@pytest.fixture
def reviewed_broker(
    tmp_path: Path, broker_identity: BrokerIdentity, second_broker_identity: BrokerIdentity
) -> Iterator[Broker]:
    """The e2e broker with a break-glass rule reviewed by `security` (sam), and a publicUrl that is not
    the address the CLI uses, so a link built from it is told apart from one built by the CLI."""
    workdir = tmp_path / "broker"
    workdir.mkdir()
    running = Broker(workdir, [broker_identity, second_broker_identity], policy=POLICY)
    running.extra_config = {
        "broker": {"publicUrl": f"http://localhost:{running.port}"},
        "devIssuer": {"enabled": True, "users": {**USERS, "sam": ["security"]}},
    }
    running.start()
    yield running
    running.stop()


def audit_events(broker: Broker, grant_id: str) -> list[dict[str, Any]]:
    done = broker.cli(
        "root",
        "audit",
        "search",
        "-f",
        str(broker.workdir / "config.yaml"),
        "--grant",
        grant_id,
        "-o",
        "json",
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_break_glass_is_flagged_listed_and_cleared_by_a_reviewer_never_its_holder(
    reviewed_broker: Broker,
    control_plane: ControlPlane,
    namespaces: Callable[..., list[str]],
    admin_client: Client,
) -> None:
    broker = reviewed_broker
    (ns,) = namespaces(control_plane, 1)
    broker.login("bob", "carol", "sam", "root")
    grant = broker.json(
        "bob",
        "request",
        "-c",
        control_plane.name,
        "-n",
        ns,
        "-r",
        "edit",
        "--break-glass",
        "--reason",
        "INC-77",
    )
    gid = grant["id"]
    assert grant["state"] == "active" and grant["rule"] == "e2e-break-glass"
    assert grant["needs_review"] is True and grant["reviewer_groups"] == ["security"]
    assert len(owned_objects(admin_client, gid)) == 2

    # Listed for the reviewer and the admin; not for the holder, nor for a colleague who is no reviewer.
    assert [g["id"] for g in broker.json("sam", "reviews")] == [gid]
    assert [g["id"] for g in broker.json("root", "reviews")] == [gid]
    assert broker.json("bob", "reviews") == [] and broker.json("carol", "reviews") == []
    table = broker.cli("sam", "reviews").stdout
    assert gid in table and "INC-77" in table and "security" in table

    # The holder is refused with a clear error; so is anyone who may not review it.
    own = broker.cli("bob", "review", gid, "--comment", "all fine, trust me", check=False)
    assert own.returncode == 3 and "cannot review your own break-glass grant" in own.stderr
    assert "Hint:" in own.stderr and "Traceback" not in own.stderr
    other = broker.cli("carol", "review", gid, "--comment", "looks ok", check=False)
    assert other.returncode == 5 and f"grant {gid} not found" in other.stderr
    # Bad input: refused, nothing recorded.
    for args, code, words in (
        (("review", gid, "--comment", ""), 2, "a review needs a comment"),
        (("review", gid, "--comment", "ok\x1b[31m"), 2, "U+001B"),
        (("review", "not/an/id", "--comment", "ok"), 2, "is not a grant id"),
        (("review", "gffffffffffff", "--comment", "ok"), 5, "not found"),
    ):
        done = broker.cli("sam", *args, check=False)
        assert done.returncode == code and words in done.stderr, (args, done.returncode, done.stderr)
        assert "Traceback" not in done.stderr
    assert [g["id"] for g in broker.json("sam", "reviews")] == [gid]

    reviewed = broker.cli("sam", "review", gid, "--comment", "INC-77 rollback; API audit log matches")
    assert "Review recorded." in reviewed.stdout and "INC-77 rollback" in reviewed.stdout
    assert broker.json("sam", "reviews") == [] and broker.json("root", "reviews") == []
    again = broker.cli("root", "review", gid, "--comment", "second look", check=False)
    assert again.returncode == 6 and "already reviewed by sam" in again.stderr
    after = broker.json("bob", "grants")[0]
    assert after["needs_review"] is False and after["review"]["reviewer"] == "sam"
    assert after["state"] == "active"  # a review is no revocation

    events = {e["action"]: e for e in audit_events(broker, gid)}
    assert events["grant.activated"]["details"]["reviewers"] == ["security"]
    assert events["grant.break_glass"]["details"]["reviewers"] == ["security"]
    review = events["grant.reviewed"]
    assert review["actor"] == "sam" and review["details"]["reviewer"] == "sam"
    assert review["details"]["comment"] == "INC-77 rollback; API audit log matches"
    assert "grant.reviewed" not in {e["action"] for e in audit_events(broker, gid) if e["actor"] == "bob"}


def test_open_print_is_the_brokers_link_to_the_request_page(
    reviewed_broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]]
) -> None:
    broker = reviewed_broker
    (ns,) = namespaces(control_plane, 1)
    broker.login("alice", "bob")
    pending = broker.json(
        "alice", "request", "-c", control_plane.name, "-n", ns, "-r", "admin", "--reason", "migration"
    )
    link = f"http://localhost:{broker.port}/ui/requests/{pending['id']}"  # broker.publicUrl's, not the CLI's
    assert pending["ui_url"] == link
    for user in ("alice", "bob"):  # the requester, and an approver it waits for
        done = broker.cli(user, "open", pending["id"], "--print")
        assert done.stdout == link + "\n"
    missing = broker.cli("alice", "open", "gffffffffffff", "--print", check=False)
    assert missing.returncode == 5 and "not found" in missing.stderr
    bad = broker.cli("alice", "open", "../../etc", "--print", check=False)
    assert bad.returncode == 2 and "is not a grant id" in bad.stderr and "Traceback" not in bad.stderr
