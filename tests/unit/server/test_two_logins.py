"""One person with logins at two issuers is one approver, through the real app and OIDC verification."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from kubejit.clock import FixedClock
from kubejit.grants.service import GrantService
from kubejit.identity.claims import ClaimMapping
from kubejit.identity.oidc import IssuerSet, OIDCIssuer, OIDCVerifier
from kubejit.ids import GrantId
from kubejit.policy.load import parse_policy
from kubejit.server.app import create_app
from kubejit.server.deps import Services
from kubejit.server.schemas import ClusterOut
from tests.fakes import FakeCluster, MemoryStore

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 1, tzinfo=UTC)
POLICY = """
roles:
  edit: {clusterRole: edit}
rules:
  - name: dev-edit
    groups: [okta:developers, google:developers]
    clusters: [dev]
    namespaces: ["team-*"]
    roles: [edit]
    approval: {approvers: 2, groups: [okta:sre, google:sre]}
"""
REQUEST = {"cluster": "dev", "namespaces": ["team-a"], "role": "edit", "duration": "30m", "reason": "fix"}
KEYS = {
    name: RSAKey.generate_key(2048, parameters={"kid": name}, private=True) for name in ("okta", "google")
}


class StaticKeys:
    def __init__(self, key: RSAKey) -> None:
        self.keys = KeySet([key])

    def keys_for(self, kid: str | None) -> KeySet:
        return self.keys


@dataclass
class World:
    http: TestClient
    store: MemoryStore

    def login(self, issuer: str, user: str, groups: list[str], *, email: str | None = None) -> dict[str, str]:
        now = int(NOW.timestamp())
        claims: dict[str, Any] = {"iss": f"https://{issuer}.example", "aud": "kubejit", "sub": user}
        claims.update(iat=now, exp=now + 300, groups=groups)
        if email:
            claims.update(email=email, email_verified=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            token = jwt.encode({"alg": "RS256", "kid": issuer}, claims, KEYS[issuer])
        return {"authorization": f"Bearer {token}"}


@pytest.fixture
def world() -> Iterator[World]:
    clock = FixedClock(NOW)
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
    verifiers = [
        OIDCVerifier(
            OIDCIssuer(
                url=f"https://{name}.example",
                audience="kubejit",
                mapping=ClaimMapping(issuer_name=name, prefix=f"{name}:"),
            ),
            keys=StaticKeys(key),
            clock=clock,
        )
        for name, key in KEYS.items()
    ]
    services = Services(
        grants=service, authenticator=IssuerSet(verifiers), clusters=[ClusterOut(name="dev", audience="a")]
    )
    with TestClient(create_app(services, max_body_bytes=4096)) as http:
        yield World(http, store)


def test_a_second_login_of_one_approver_does_not_count_twice(world: World) -> None:
    alice = world.login("okta", "alice", ["developers"], email="alice@corp.example")
    grant = world.http.post("/v1/grants", json=REQUEST, headers=alice).json()
    approve = f"/v1/grants/{grant['id']}/approve"
    okta_bob = world.login("okta", "bob", ["sre"], email="Bob@Corp.example")
    google_bob = world.login("google", "bob.smith", ["sre"], email="bob@corp.example")
    assert world.http.post(approve, json={"comment": "ok"}, headers=okta_bob).status_code == 200
    again = world.http.post(approve, json={"comment": "me again"}, headers=google_bob)
    assert again.status_code == 403, again.text
    assert "the same person" in again.json()["detail"]
    assert world.store.get(GrantId(grant["id"])).state == "pending"
    carol = world.login("google", "carol", ["sre"], email="carol@corp.example")
    assert world.http.post(approve, json={}, headers=carol).json()["state"] == "active"


def test_the_requester_cannot_approve_under_their_other_login(world: World) -> None:
    alice = world.login("okta", "alice", ["developers"], email="alice@corp.example")
    grant = world.http.post("/v1/grants", json=REQUEST, headers=alice).json()
    google_alice = world.login("google", "alice", ["sre"], email="alice@corp.example")
    refused = world.http.post(f"/v1/grants/{grant['id']}/approve", json={}, headers=google_alice)
    assert refused.status_code == 403 and "your own request" in refused.json()["detail"], refused.text
    assert world.store.get(GrantId(grant["id"])).approvals == ()


def test_requests_and_approvals_record_the_person(world: World) -> None:
    alice = world.login("okta", "alice", ["developers"], email="alice@corp.example")
    grant = world.http.post("/v1/grants", json=REQUEST, headers=alice).json()
    bob = world.login("okta", "bob", ["sre"], email="bob@corp.example")
    world.http.post(f"/v1/grants/{grant['id']}/approve", json={}, headers=bob)
    people = {e.action: e.details.get("person") for e in world.store.events}
    assert people["grant.requested"] == "alice@corp.example"
    assert people["grant.approval_recorded"] == "bob@corp.example"
    assert world.store.get(GrantId(grant["id"])).approvals[0].person == "bob@corp.example"
