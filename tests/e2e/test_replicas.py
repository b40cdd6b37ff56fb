"""Three `kubejit serve` processes on one PostgreSQL and one control plane, under load, one of them
killed with SIGKILL mid-way and started again.

Clients spread their calls over the replicas (each step of a grant on the next one, failing over
when one does not answer, as a load balancer would): grants are requested, approved, revoked and
left to expire (seconds long). Afterwards, from the database, the cluster and the audit receiver:
no grant was activated twice (one ``grant.activated``, one ServiceAccount: every token minted for
it names the same account uid), every grant ended and left no object behind, the audit chain
verifies with no event lost or stored twice, and the receiver got every event (de-duplicated by
event id; only the killed replica's batch in flight may arrive twice). Expiry precision (end - due)
is measured and printed, not asserted: the machine is shared.
"""

from __future__ import annotations

import itertools
import json
import secrets
import statistics
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from kubejit.audit.event import StoredEvent
from kubejit.store import audit_log
from kubejit.store.engine import create_store_engine
from kubejit.testing.controlplane import ControlPlane
from tests.broker_identity import BrokerIdentity
from tests.broker_process import KUBEJIT, Broker
from tests.e2e.conftest import owned_objects
from tests.integration.test_audit_delivery import HMAC_KEY, HttpReceiver
from tests.integration.test_store import _fresh_postgres_database, postgres_admin_url  # noqa: F401
from tests.polling import eventually, poll

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

REPLICAS = 3
CLIENTS = 6
ROUNDS = 6
BATCH = 20
DEVELOPERS = [f"dev{n}" for n in range(CLIENTS)]
POLICY = """
roles:
  view: {clusterRole: view}
adminGroups: [platform-admins]
rules:
  - name: auto
    groups: [developers]
    clusters: ["*"]
    namespaces: ["e2e-auto-*"]
    roles: [view]
    duration: {default: 15s, max: 1m}
    approval: auto
  - name: approved
    groups: [developers]
    clusters: ["*"]
    namespaces: ["e2e-appr-*"]
    roles: [view]
    duration: {default: 15s, max: 1m}
    approval: {approvers: 1, groups: [sre]}
    pendingTimeout: 30s
"""


@dataclass
class Cluster:
    """The replicas, and the clients' view of them: the next replica for each call."""

    replicas: list[Broker]
    tokens: dict[str, str] = field(default_factory=dict)
    _turn: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, user: str, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """One API call on the next replica; one that does not answer (killed) is skipped, as a load
        balancer would. A call cut short may have taken effect: the flows check the grant's state."""
        for _ in range(len(self.replicas) * 20):
            with self._lock:
                replica = self.replicas[next(self._turn) % len(self.replicas)]
            headers = {"authorization": f"Bearer {self.tokens[user]}"}
            try:
                answer = httpx.request(method, replica.url + path, json=body, headers=headers, timeout=60)
            except httpx.TransportError:
                continue
            if answer.status_code != 503:  # 503: the store did not answer in time, worth retrying
                return answer
        raise AssertionError(f"{method} {path}: no replica answered")

    def state(self, grant_id: str) -> str:
        """The grant's state, as an admin sees it."""
        return str(self.call("root", "GET", f"/v1/grants/{grant_id}").json()["state"])


def _grant(cluster: Cluster, user: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = cluster.call(user, "POST", "/v1/grants", body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _mint(cluster: Cluster, user: str, grant_id: str) -> None:
    """A token for an active grant; an activation the killed replica left half-done is finished by
    another replica's reconciler, so an approved grant is asked again until it is active."""

    def mint() -> int:
        return cluster.call(user, "POST", f"/v1/grants/{grant_id}/token").status_code

    # Ended on its own first (a slow machine) is the one other fine outcome.
    done = poll(mint, lambda status: status == 200 or cluster.state(grant_id) == "expired", within=60)
    assert done == 200 or cluster.state(grant_id) == "expired", done


def _decide(
    cluster: Cluster, user: str, grant_id: str, verb: str, body: dict[str, str], want: set[str]
) -> None:
    """Approve or revoke; a refusal is fine only when a first attempt cut short had done it."""
    answer = cluster.call(user, "POST", f"/v1/grants/{grant_id}/{verb}", body)
    if answer.status_code != 200:
        assert cluster.state(grant_id) in want, answer.text


def _client(cluster: Cluster, plane: str, user: str, namespaces: list[str], done: list[int]) -> None:
    """Each round one of: an auto grant left to expire, an approved one left to expire, one revoked."""
    for round_ in range(ROUNDS):
        kind = (round_ + DEVELOPERS.index(user)) % 3
        namespace = namespaces[1] if kind == 1 else namespaces[0]
        duration = "45s" if kind == 2 else "20s"
        body = {"cluster": plane, "namespaces": [namespace], "role": "view", "duration": duration}
        grant = _grant(cluster, user, body)
        if kind == 1:
            _decide(cluster, "bob", grant["id"], "approve", {"comment": "ok"}, {"approved", "active"})
        _mint(cluster, user, grant["id"])
        if kind == 2:
            _decide(cluster, user, grant["id"], "revoke", {"reason": "done"}, {"revoked"})
        done.append(1)


@pytest.fixture
def database(postgres_admin_url: str) -> Iterator[str]:  # noqa: F811 (the imported fixture)
    with _fresh_postgres_database(postgres_admin_url) as url:
        yield url


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    http = HttpReceiver().start()
    yield http
    http.stop()


@pytest.fixture
def replicas(
    tmp_path: Path, database: str, receiver: HttpReceiver, broker_identity: BrokerIdentity
) -> Iterator[list[Broker]]:
    (tmp_path / "hmac.key").write_bytes(HMAC_KEY)
    users = {**{d: ["developers"] for d in DEVELOPERS}, "bob": ["sre"], "root": ["platform-admins"]}
    made: list[Broker] = []
    for n in range(REPLICAS):
        broker_section: dict[str, Any] = {"maxOpenGrantsPerPerson": 100}
        if made:  # one public URL (the dev issuer's tokens name it): as behind one load balancer
            broker_section["publicUrl"] = made[0].url
        broker = Broker(
            tmp_path / f"replica{n}",
            [broker_identity],
            policy=POLICY,
            extra_config={
                "broker": broker_section,
                "store": {"url": database},
                "dataDir": str(tmp_path / "data"),  # one dev-issuer key, one checkpoint key
                "devIssuer": {"enabled": True, "users": users},
                # Reconcilers as busy as allowed, so their repairs overlap the requests' activations.
                "workers": {"sweepIntervalSeconds": 0.2, "reconcileIntervalSeconds": 1},
                "audit": {
                    "deliveryIntervalSeconds": 0.1,
                    "checkpointIntervalSeconds": 2,  # the replicas sign side by side, under load
                    "retry": {"initialSeconds": 0.2, "maxSeconds": 1},
                    "sinks": [
                        {
                            "name": "webhook",
                            "type": "webhook",
                            "url": f"{receiver.url}/hook",
                            "batchSize": BATCH,
                            "hmacKey": {"fromFile": str(tmp_path / "hmac.key")},
                        },
                    ],
                },
            },
        )
        broker.workdir.mkdir()
        made.append(broker.start())
    yield made
    for broker in made:
        broker.stop()


def _stored(database: str) -> tuple[list[StoredEvent], list[dict[str, Any]]]:
    engine = create_store_engine(database)
    try:
        events = list(audit_log.iter_events(engine))
        with engine.connect() as conn:
            grants = [dict(row._mapping) for row in conn.execute(sa.text("SELECT * FROM grants"))]
    finally:
        engine.dispose()
    return events, grants


def _login(replica: Broker, user: str) -> str:
    answer = httpx.post(f"{replica.url}/v1/dev/login", json={"user": user}, timeout=30)
    answer.raise_for_status()
    return str(answer.json()["token"])


def _load(cluster: Cluster, plane: str, namespaces: list[str], *, victim: Broker) -> None:
    """The clients' rounds, with ``victim`` killed a third of the way through and started again at
    two thirds."""
    done: list[int] = []
    failures: list[BaseException] = []

    def run(user: str) -> None:
        try:
            _client(cluster, plane, user, namespaces, done)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(user,)) for user in DEVELOPERS]
    for thread in threads:
        thread.start()
    total = CLIENTS * ROUNDS
    eventually(lambda: len(done) >= total // 3 or bool(failures), what="a third of the load", within=300)
    victim.kill()  # mid-load: whatever it was doing is cut short
    eventually(lambda: len(done) >= 2 * total // 3 or bool(failures), what="two thirds", within=300)
    victim.start()
    for thread in threads:
        thread.join()
    assert failures == []


def _check_grants(database: str, admin: Client) -> tuple[list[StoredEvent], list[dict[str, Any]]]:
    """Every grant ended once, with its objects gone; none activated twice."""

    def live() -> list[str]:
        return [g["id"] for g in _stored(database)[1] if g["state"] in ("pending", "approved", "active")]

    # A request whose answer was lost with the killed replica was made again: the first one expires.
    assert poll(live, lambda found: not found, within=180, every=1) == []
    events, grants = _stored(database)
    assert len(grants) >= CLIENTS * ROUNDS

    def leftovers() -> list[str]:
        return [name for g in grants for name in owned_objects(admin, g["id"])]

    assert poll(leftovers, lambda found: not found, within=120, every=1) == []
    activated = Counter(e.grant_id for e in events if e.action == "grant.activated")
    assert set(activated.values()) == {1}
    assert set(activated) == {g["id"] for g in grants if g["activated_at"] is not None}
    # One ServiceAccount per grant: every token minted for a grant names the same account uid.
    accounts: dict[str, set[str]] = {}
    for e in events:
        if e.action in ("token.minted", "token.refreshed") and e.grant_id:
            accounts.setdefault(e.grant_id, set()).add(str(e.details.get("service_account_uid")))
    assert accounts and all(len(uids) == 1 for uids in accounts.values()), accounts
    ended = Counter(e.grant_id for e in events if e.action in ("grant.expired", "grant.revoked"))
    assert set(ended.values()) == {1}
    # Repairs never fought the grants: nothing was removed by hand, so nothing needed restoring, and
    # the reconciler removed objects only of grants that had already ended.
    assert [e.grant_id for e in events if e.action == "reconciler.restored"] == []
    endings = ("grant.expired", "grant.revoked", "grant.failed")
    ended_at = {e.grant_id: e.seq for e in events if e.action in endings}
    removed = [e for e in events if e.action == "reconciler.deleted_orphans"]
    assert all(e.grant_id in ended_at and ended_at[e.grant_id] < e.seq for e in removed), removed
    return events, grants


def _check_audit(database: str, config: Path, events: list[StoredEvent], receiver: HttpReceiver) -> int:
    """The chain verifies with nothing lost or stored twice, and the receiver got it all; returns how
    many events it got twice (at most the batch the killed replica had in flight)."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len({e.event_id for e in events}) == len(events)
    verified = subprocess.run(
        [KUBEJIT, "audit", "verify", "--config", str(config), "-o", "json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    verdict = json.loads(verified.stdout)["data"]
    assert verdict["ok"] and verdict["checkpoints"] > 0, verdict  # signed by the replicas' one key
    stored_ids = [e.event_id for e in _stored(database)[0]]

    def raw() -> list[str]:
        with receiver._lock:
            return [e["metadata"]["uid"] for batch in receiver.batches["/hook"] for e in batch]

    def received() -> list[str]:
        return list(dict.fromkeys(raw()))[: len(stored_ids)]

    assert poll(received, lambda got: got == stored_ids, within=120, every=0.5) == stored_ids
    got = raw()
    twice = len(got) - len(set(got))
    assert twice <= BATCH, f"{twice} events delivered twice: more than the killed replica's batch"
    return twice


def test_three_replicas_under_load_with_one_killed_and_restarted(
    replicas: list[Broker],
    database: str,
    receiver: HttpReceiver,
    control_plane: ControlPlane,
    admin_client: Client,
) -> None:
    cluster = Cluster(replicas)
    for n, user in enumerate([*DEVELOPERS, "bob", "root"]):
        cluster.tokens[user] = _login(replicas[n % REPLICAS], user)
    suffix = secrets.token_hex(4)
    names = [f"e2e-auto-{suffix}", f"e2e-appr-{suffix}"]
    for name in names:
        admin_client.create(Namespace(metadata=ObjectMeta(name=name)))

    _load(cluster, control_plane.name, names, victim=replicas[1])

    events, grants = _check_grants(database, admin_client)
    twice = _check_audit(database, replicas[0].workdir / "config.yaml", events, receiver)
    precision = sorted(
        (g["ended_at"] - g["expires_at"]).total_seconds()
        for g in grants
        if g["state"] == "expired" and g["activated_at"] is not None
    )
    assert precision, "no grant was left to expire"
    print(  # this run's figures (pytest -s); the machine is shared, so nothing is asserted on them
        f"\nreplicas e2e: {len(grants)} grants, {len(events)} events, {twice} delivered twice; "
        f"expiry end-due median {statistics.median(precision) * 1000:.0f} ms, "
        f"max {precision[-1] * 1000:.0f} ms over {len(precision)} expiries"
    )
