"""Rate limits at the HTTP boundary (in-process ASGI): 429 problem+json with Retry-After, before any write.

Without limits, every bad bearer token and every refused token exchange is one chained audit write
under the database's writer lock; these tests count the writes a flood causes.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey

from kubejit.clock import FixedClock
from kubejit.grants.exchange import WorkloadExchange
from kubejit.grants.service import GrantService
from kubejit.identity.dev_issuer import DevIssuer
from kubejit.ids import GrantId
from kubejit.policy.load import parse_policy
from kubejit.server.app import create_app
from kubejit.server.auth_failures import AuthFailureSummary
from kubejit.server.deps import Services
from kubejit.server.rate_limits import RateLimits, RequestLimiter
from kubejit.server.schemas import ClusterOut
from tests.fakes import FakeCluster, MemoryStore

pytestmark = pytest.mark.unit

POLICY = """
roles: {view: {clusterRole: view}}
rules:
  - name: dev-view
    groups: [developers]
    clusters: [dev]
    namespaces: ["team-*"]
    roles: [view]
    approval: auto
"""
GOOD = {"cluster": "dev", "namespaces": ["team-a"], "role": "view", "duration": "30m", "reason": "debug"}
SOURCE = ("127.0.0.1", 40000)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    store: MemoryStore
    services: Services
    issuer: DevIssuer
    monotonic: FakeMonotonic

    def client(self, source: tuple[str, int] = SOURCE) -> TestClient:
        return TestClient(create_app(self.services), client=source)

    def auth(self, user: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.issuer.issue(user)}"}


def build(limits: RateLimits, *, summary_seconds: float = 60) -> World:
    clock, store, monotonic = FixedClock(), MemoryStore(), FakeMonotonic()
    ids = (GrantId(f"g{i}") for i in itertools.count(1))
    service = GrantService(
        store=store,
        audit=store,
        clusters={"dev": FakeCluster()},
        policy=parse_policy(POLICY),
        clock=clock,
        id_factory=lambda: next(ids),
    )
    key = ECKey.generate_key("P-256", parameters={"kid": "k"}, private=True)
    issuer = DevIssuer(
        users={"alice": frozenset({"developers"})}, key=key, issuer="http://test/dev", clock=clock
    )
    services = Services(
        grants=service,
        authenticator=issuer,
        clusters=[ClusterOut(name="dev", audience="a")],
        exchange=WorkloadExchange(grants=service, issuers=[], spent=None),  # type: ignore[arg-type]
        limiter=RequestLimiter(limits, monotonic=monotonic),
        auth_failures=AuthFailureSummary(store.record, clock=clock, interval_seconds=summary_seconds),
    )
    return World(store, services, issuer, monotonic)


class Answer(Protocol):
    """What these checks read of a response (TestClient's is httpx's or httpx2's, whichever is installed)."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


def assert_rate_limited(response: Answer, retry_after: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == retry_after
    body = response.json()
    assert body["code"] == "rate-limited" and body["status"] == 429 and body["hint"]


def test_a_source_past_its_limit_gets_429_with_retry_after_and_nothing_is_written() -> None:
    world = build(RateLimits(per_source_per_minute=3))
    with world.client() as http:
        for _ in range(3):
            assert http.post("/v1/grants", json=GOOD, headers=world.auth("alice")).status_code == 201
        events = len(world.store.events)
        refused = http.post("/v1/grants", json=GOOD, headers=world.auth("alice"))
        assert_rate_limited(refused, "20")
        assert "127.0.0.1" in refused.json()["detail"] and "limit 3 a minute" in refused.json()["detail"]
        assert http.post("/v1/grants", headers={"authorization": "Bearer bad"}).status_code == 429
        assert len(world.store.grants) == 3 and len(world.store.events) == events
        assert http.get("/healthz").status_code == 200  # probes are never limited
        world.monotonic.now += 20  # one request's worth refilled
        assert http.post("/v1/grants", json=GOOD, headers=world.auth("alice")).status_code == 201
    with world.client(("127.0.0.2", 40000)) as other:  # loopback is not exempt, but each source is apart
        assert other.get("/v1/grants", headers=world.auth("alice")).status_code == 200


def test_a_principal_past_its_limit_gets_429_from_any_source() -> None:
    world = build(RateLimits(per_principal_per_minute=2))
    with world.client() as http, world.client(("127.0.0.2", 1)) as elsewhere:
        assert http.post("/v1/grants", json=GOOD, headers=world.auth("alice")).status_code == 201
        assert elsewhere.post("/v1/grants", json=GOOD, headers=world.auth("alice")).status_code == 201
        refused = elsewhere.post("/v1/grants", json=GOOD, headers=world.auth("alice"))
        assert_rate_limited(refused, "30")
        assert "by alice" in refused.json()["detail"] and len(world.store.grants) == 2


def test_a_flood_of_bad_bearer_tokens_writes_two_events_and_loses_no_count() -> None:
    world = build(RateLimits(auth_failures_per_source_per_minute=50))
    with world.client() as http:
        statuses = [
            http.get("/v1/grants", headers={"authorization": f"Bearer bad-{n}"}).status_code
            for n in range(1000)
        ]
        assert statuses.count(401) == 50 and statuses.count(429) == 950
        assert world.store.actions() == ["auth.failed"]  # 1,000 bad tokens, one write so far
        # A valid token from the same source is verified first: a neighbour's failures do not lock it out.
        assert http.get("/v1/grants", headers=world.auth("alice")).status_code == 200
    # Stopping the app writes the summary: nothing counted is lost.
    assert world.store.actions() == ["auth.failed", "auth.failed"]
    summary = world.store.events[1].details
    assert summary["count"] == 999 and summary["source_ip"] == "127.0.0.1"
    assert summary["path"] == "/v1/grants"


def test_a_refused_request_past_the_allowance_has_retry_after() -> None:
    world = build(RateLimits(auth_failures_per_source_per_minute=1))
    with world.client() as http:
        assert http.get("/v1/grants", headers={"authorization": "Bearer x"}).status_code == 401
        assert_rate_limited(http.get("/v1/grants", headers={"authorization": "Bearer x"}), "60")


def _job_token(n: int) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'iss': 'https://ci.example', 'jti': str(n)})}.c2ln"


def test_a_flood_of_refused_token_exchanges_is_cut_off_before_it_writes() -> None:
    world = build(RateLimits(auth_failures_per_source_per_minute=5))
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
    }
    with world.client() as http:
        answers = [
            http.post("/v1/token-exchange", data={**form, "subject_token": _job_token(n)}) for n in range(200)
        ]
    assert [a.status_code for a in answers].count(401) == 5
    assert_rate_limited(answers[-1], "12")
    assert answers[-1].json()["error"] == "temporarily_unavailable"
    assert world.store.actions() == ["token_exchange.refused"] * 5
