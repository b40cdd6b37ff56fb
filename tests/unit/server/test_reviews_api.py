"""GET /v1/reviews and POST /v1/grants/{id}/review: the service's rules as problem+json, and the page link."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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
from tests.fakes import FakeCluster, MemoryStore

pytestmark = pytest.mark.unit

POLICY = """
roles:
  edit: {clusterRole: edit}
adminGroups: [platform-admins]
rules:
  - name: sre-break-glass
    groups: [sre]
    clusters: [dev]
    namespaces: ["*"]
    roles: [edit]
    breakGlass: true
    reviewers: [security]
"""
EMERGENCY = {
    "cluster": "dev",
    "namespaces": ["payments"],
    "role": "edit",
    "reason": "INC-9",
    "break_glass": True,
}
PUBLIC_URL = "https://kubejit.example.com/"


@dataclass
class World:
    http: TestClient
    store: MemoryStore
    issuer: DevIssuer

    def auth(self, user: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.issuer.issue(user)}"}

    def break_glass(self, user: str = "bob") -> dict[str, Any]:
        answer = self.http.post("/v1/grants", json=EMERGENCY, headers=self.auth(user))
        assert answer.status_code == 201, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def review(self, user: str, grant_id: str, body: object) -> Any:
        return self.http.post(f"/v1/grants/{grant_id}/review", json=body, headers=self.auth(user))


@pytest.fixture
def world() -> Iterator[World]:
    clock = FixedClock()
    store = MemoryStore()
    ids = (GrantId(f"g{i}") for i in itertools.count(1))
    service = GrantService(
        store=store,
        audit=store,
        clusters={"dev": FakeCluster()},
        policy=parse_policy(POLICY),
        clock=clock,
        id_factory=lambda: next(ids),
    )
    users = {
        "bob": frozenset({"sre"}),
        "carol": frozenset({"sre"}),
        "sam": frozenset({"security"}),
        "root": frozenset({"platform-admins"}),
    }
    key = ECKey.generate_key("P-256", parameters={"kid": "k"}, private=True)
    issuer = DevIssuer(users=users, key=key, issuer="http://test/dev", clock=clock)
    services = Services(
        grants=service,
        authenticator=issuer,
        clusters=[ClusterOut(name="dev", audience="a")],
        dev_issuer=issuer,
        public_url=PUBLIC_URL,
    )
    with TestClient(create_app(services), client=("127.0.0.1", 50000)) as http:
        yield World(http, store, issuer)


def test_a_break_glass_grant_is_listed_for_its_reviewer_and_admins_until_reviewed(world: World) -> None:
    grant = world.break_glass()
    assert (
        grant["needs_review"] is True and grant["reviewer_groups"] == ["security"] and grant["review"] is None
    )
    assert grant["ui_url"] == "https://kubejit.example.com/ui/requests/g1"
    for user in ("sam", "root"):
        listed = world.http.get("/v1/reviews", headers=world.auth(user))
        assert listed.status_code == 200 and [g["id"] for g in listed.json()] == ["g1"]
    assert world.http.get("/v1/reviews", headers=world.auth("bob")).json() == []  # the holder's own
    assert world.http.get("/v1/reviews", headers=world.auth("carol")).json() == []

    done = world.review("sam", "g1", {"comment": "rollback checked"})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["needs_review"] is False and body["review"]["reviewer"] == "sam"
    assert body["review"]["comment"] == "rollback checked"
    assert world.http.get("/v1/reviews", headers=world.auth("root")).json() == []


def test_the_holder_is_refused_with_a_clear_problem(world: World) -> None:
    world.break_glass()
    refused = world.review("bob", "g1", {"comment": "all good, trust me"})
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["code"] == "review-refused"
    assert "cannot review your own break-glass grant g1" in problem["detail"]
    assert "security" in problem["hint"]
    assert world.store.get(GrantId("g1")).needs_review


def test_a_second_review_is_a_conflict(world: World) -> None:
    world.break_glass()
    assert world.review("sam", "g1", {"comment": "first"}).status_code == 200
    again = world.review("root", "g1", {"comment": "second"})
    assert again.status_code == 409 and again.json()["code"] == "invalid-transition"
    assert "already reviewed by sam" in again.json()["detail"]


def test_an_unknown_or_invisible_grant_is_not_found(world: World) -> None:
    world.break_glass()
    for user, grant_id in (("sam", "gnope"), ("carol", "g1")):
        missing = world.review(user, grant_id, {"comment": "x"})
        assert missing.status_code == 404 and missing.json()["code"] == "not-found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "comment"),
        ({"comment": ""}, "comment"),
        ({"comment": "   "}, "comment"),
        ({"comment": "x" * 1001}, "comment"),
        ({"comment": "ok\nrm"}, "comment"),
        ({"comment": "ok\x1b[2J"}, "comment"),
        ({"comment": 5}, "comment"),
        ({"comment": "ok", "extra": 1}, "extra"),
    ],
)
def test_bad_bodies_are_problem_json_and_change_nothing(world: World, body: object, field: str) -> None:
    world.break_glass()
    before = list(world.store.events)
    refused = world.review("sam", "g1", body)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert field in refused.text
    assert world.store.get(GrantId("g1")).needs_review and world.store.events == before


def test_every_grant_answer_links_its_page(world: World) -> None:
    world.break_glass()
    for path in ("/v1/grants/g1", "/v1/grants"):
        answer = world.http.get(path, headers=world.auth("bob")).json()
        first = answer[0] if isinstance(answer, list) else answer
        assert first["ui_url"] == "https://kubejit.example.com/ui/requests/g1"
