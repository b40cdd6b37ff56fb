"""Locks and offboarding over HTTP: a locked principal is refused at authentication on every route."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey

from kubejit.clock import FixedClock
from kubejit.grants.service import GrantService
from kubejit.identity.dev_issuer import DevIssuer
from kubejit.ids import GrantId
from kubejit.policy.load import parse_policy
from kubejit.server.app import create_app
from kubejit.server.deps import Services
from kubejit.server.schemas import ClusterOut
from tests.fakes import FakeCluster, MemoryLockStore, MemoryStore
from tests.unit.server.test_api import GOOD, POLICY

pytestmark = pytest.mark.unit


@dataclass
class World:
    http: TestClient
    store: MemoryStore
    locks: MemoryLockStore
    cluster: FakeCluster
    issuer: DevIssuer

    def auth(self, user: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.issuer.issue(user)}"}


@pytest.fixture
def world() -> Iterator[World]:
    clock = FixedClock()
    store, cluster, locks = MemoryStore(), FakeCluster(), MemoryLockStore()
    ids = (GrantId(f"g{i}") for i in itertools.count(1))
    lock_ids = (f"l{i}" for i in itertools.count(1))
    service = GrantService(
        store=store,
        audit=store,
        clusters={"dev": cluster},
        policy=parse_policy(POLICY),
        clock=clock,
        id_factory=lambda: next(ids),
        locks=locks,
        lock_id_factory=lambda: next(lock_ids),
    )
    users = {
        "alice": frozenset({"developers"}),
        "bob": frozenset({"sre"}),
        "root": frozenset({"platform-admins"}),
        "root2": frozenset({"platform-admins"}),
    }
    key = ECKey.generate_key("P-256", parameters={"kid": "k"}, private=True)
    issuer = DevIssuer(users=users, key=key, issuer="http://test/dev", clock=clock)
    services = Services(
        grants=service,
        authenticator=issuer,
        clusters=[ClusterOut(name="dev", audience="a")],
        dev_issuer=issuer,
    )
    with TestClient(create_app(services, max_body_bytes=4096)) as http:
        yield World(http, store, locks, cluster, issuer)


def test_offboarding_reports_locks_and_refuses_every_route_until_unlocked(world: World) -> None:
    alice = world.auth("alice")  # her IdP token stays valid throughout
    grant = world.http.post("/v1/grants", json=GOOD, headers=alice).json()
    r = world.http.post(
        "/v1/revocations", json={"user": "alice", "reason": "left"}, headers=world.auth("root")
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert [g["id"] for g in done["ended"]] == [grant["id"]] and done["skipped"] == []
    assert done["lock"]["kind"] == "user" and done["lock_created"] is True
    assert done["message"] == "alice: ended 1 grant(s); locked by l1."
    for method, path in [
        ("POST", "/v1/grants"),
        ("GET", "/v1/grants"),
        ("GET", "/v1/whoami"),
        ("POST", f"/v1/grants/{grant['id']}/token"),
    ]:
        r = world.http.request(method, path, json=GOOD if method == "POST" else None, headers=alice)
        assert r.status_code == 403, (path, r.text)
        body = r.json()
        assert body["code"] == "locked" and "l1" in body["detail"] and "left" in body["detail"]
        assert "until an admin unlocks it" in body["detail"] and "kubejit unlock l1" in body["hint"]
    assert len(world.store.grants) == 1
    again = world.http.post("/v1/revocations", json={"user": "alice"}, headers=world.auth("root")).json()
    assert again["ended"] == [] and again["lock_created"] is False
    assert again["message"] == "alice: no open grants: nothing to end; locked by l1 (already)."
    listed = world.http.get("/v1/locks", headers=world.auth("root")).json()
    assert [lk["id"] for lk in listed] == ["l1"]
    r = world.http.delete("/v1/locks/l1", headers=world.auth("root2"))
    assert r.status_code == 200 and r.json()["removed_by"] == "root2"
    assert world.http.post("/v1/grants", json=GOOD, headers=alice).status_code == 201
    assert world.http.get("/v1/locks", headers=world.auth("root")).json() == []
    everything = world.http.get("/v1/locks", params={"include_removed": True}, headers=world.auth("root"))
    assert [lk["id"] for lk in everything.json()] == ["l1"]
    assert world.http.delete("/v1/locks/l1", headers=world.auth("root")).status_code == 409
    assert world.http.delete("/v1/locks/l9", headers=world.auth("root")).status_code == 404


def test_offboarding_without_a_lock(world: World) -> None:
    world.http.post("/v1/grants", json=GOOD, headers=world.auth("alice"))
    body = {"user": "alice", "lock": False}
    done = world.http.post("/v1/revocations", json=body, headers=world.auth("root")).json()
    assert done["lock"] is None and done["message"] == "alice: ended 1 grant(s); not locked."
    assert world.http.post("/v1/grants", json=GOOD, headers=world.auth("alice")).status_code == 201


def test_group_and_grant_locks_with_a_duration(world: World) -> None:
    grant = world.http.post("/v1/grants", json=GOOD, headers=world.auth("alice")).json()
    body = {"grant": grant["id"], "reason": "token leaked", "duration": "1h"}
    r = world.http.post("/v1/locks", json=body, headers=world.auth("root"))
    assert r.status_code == 201, r.text
    assert r.json()["lock"]["expires_at"] and [g["id"] for g in r.json()["ended"]] == [grant["id"]]
    assert world.http.get("/v1/whoami", headers=world.auth("alice")).status_code == 200
    r = world.http.post("/v1/locks", json={"group": "sre", "reason": "incident"}, headers=world.auth("root"))
    assert r.status_code == 201 and r.json()["message"].startswith("Locked group sre (l2); no open grants")
    assert world.http.get("/v1/whoami", headers=world.auth("bob")).json()["code"] == "locked"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"reason": "x"}, 422),
        ({"user": "alice", "group": "sre", "reason": "x"}, 422),
        ({"user": "alice"}, 422),
        ({"user": "alice", "reason": ""}, 422),
        ({"user": "alice", "reason": "x", "duration": "soon"}, 422),
        ({"user": "alice", "reason": "x", "surprise": 1}, 422),
        ({"user": "root", "reason": "x"}, 422),
        ({"group": "platform-admins", "reason": "x"}, 422),
        ({"grant": "g404", "reason": "x"}, 404),
    ],
)
def test_bad_locks_are_problem_json_and_change_nothing(
    world: World, body: dict[str, object], status: int
) -> None:
    world.http.post("/v1/grants", json=GOOD, headers=world.auth("alice"))
    r = world.http.post("/v1/locks", json=body, headers=world.auth("root"))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert world.locks.locks == {} and world.cluster.objects != {}


def test_locks_are_for_admins_only(world: World) -> None:
    r = world.http.post("/v1/locks", json={"user": "bob", "reason": "x"}, headers=world.auth("alice"))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert world.http.get("/v1/locks", headers=world.auth("alice")).status_code == 403
    assert world.http.delete("/v1/locks/l1", headers=world.auth("alice")).status_code == 403
    assert (
        world.http.post("/v1/revocations", json={"user": "bob"}, headers=world.auth("alice")).status_code
        == 403
    )
    assert world.locks.locks == {}
