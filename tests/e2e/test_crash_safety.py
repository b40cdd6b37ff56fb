"""kill -9 the broker during activations and revocations; after a restart the reconciler leaves no
orphaned ServiceAccount or RoleBinding, and every active grant works."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

from lightkube import Client

from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.kubectl import RedactedToken, kubectl_with_token
from tests.broker_process import Broker
from tests.e2e.conftest import owned_objects
from tests.polling import poll

RECONCILE_WAIT_SECONDS = 60


def _grants_in(broker: Broker, *states: str) -> int:
    with sqlite3.connect(f"file:{broker.workdir / 'kubejit.db'}?mode=ro", uri=True) as db:
        marks = ",".join("?" * len(states))
        return int(db.execute(f"SELECT count(*) FROM grants WHERE state IN ({marks})", states).fetchone()[0])


def _in_parallel(calls: list[Callable[[], object]], *, kill_when: Callable[[], bool], broker: Broker) -> None:
    """Run the CLI calls at once and SIGKILL the broker as soon as ``kill_when`` holds: mid-way."""
    threads = [threading.Thread(target=call) for call in calls]
    for thread in threads:
        thread.start()
    poll(kill_when, bool, within=60, every=0.02)
    broker.kill()
    for thread in threads:
        thread.join(timeout=120)


def _owners(admin: Client, namespaces: list[str], known: set[str]) -> set[str]:
    """Grant ids owning kubejit objects in this test's namespaces, or accounts of this test's grants
    (the control plane is shared with other tests)."""
    owners = set()
    for name in owned_objects(admin):
        kind, *where = name.split("/")
        gid = where[-1].removeprefix("kubejit-")
        if (kind == "RoleBinding" and where[0] in namespaces) or gid in known:
            owners.add(gid)
    return owners


def _consistent(broker: Broker, admin: Client, namespaces: list[str]) -> tuple[bool, str]:
    grants = broker.json("root", "grants", "--all")
    active = {g["id"]: g for g in grants if g["state"] == "active"}
    orphans = _owners(admin, namespaces, {g["id"] for g in grants}) - set(active)
    incomplete = [
        gid for gid, g in active.items() if len(owned_objects(admin, gid)) != 1 + len(g["namespaces"])
    ]
    in_flight = [g["id"] for g in grants if g["state"] == "approved"]
    return (
        not orphans and not incomplete and not in_flight
    ), f"orphans={orphans} incomplete={incomplete} approved={in_flight}"


def _wait_consistent(broker: Broker, admin: Client, namespaces: list[str]) -> None:
    ok, why = poll(
        lambda: _consistent(broker, admin, namespaces), lambda found: found[0], within=RECONCILE_WAIT_SECONDS
    )
    assert ok, why


def test_kill_9_during_activations_and_revocations(
    broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]], admin_client: Client
) -> None:
    names = namespaces(control_plane, 8)
    broker.login("alice", "root")

    def request(ns: str) -> Callable[[], object]:
        return lambda: broker.cli(
            "alice", "request", "-c", control_plane.name, "-n", ns, "-r", "view", check=False
        )

    _in_parallel(
        [request(ns) for ns in names], kill_when=lambda: _grants_in(broker, "active") >= 3, broker=broker
    )
    broker.start()
    _wait_consistent(broker, admin_client, names)

    active = [g for g in broker.json("root", "grants", "--all") if g["state"] == "active"]
    assert active, "no request got through before the kill; nothing was exercised"
    for grant in active:
        token = RedactedToken(broker.grant_token("alice", grant["id"]))
        result = kubectl_with_token(
            ["get", "pods", "-n", grant["namespaces"][0]],
            server=control_plane.server,
            ca_path=control_plane.ca_path,
            token=token,
        )
        assert result.ok, result.stderr

    def revoke(gid: str) -> Callable[[], object]:
        return lambda: broker.cli("alice", "revoke", gid, check=False)

    _in_parallel(
        [revoke(g["id"]) for g in active], kill_when=lambda: _grants_in(broker, "revoked") >= 2, broker=broker
    )
    broker.start()
    _wait_consistent(broker, admin_client, names)
    # Every grant that is not active any more has left nothing behind in the cluster.
    grants = broker.json("root", "grants", "--all")
    remaining = {g["id"] for g in grants if g["state"] == "active"}
    assert _owners(admin_client, names, {g["id"] for g in grants}) == remaining
