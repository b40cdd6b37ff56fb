"""POST /v1/token-exchange in process: a real verifier and real signatures, fakes of kubejit's own ports.

Each hostile token is refused with 401 (bad token) or 403 (policy), leaves an audit record and
creates nothing; malformed requests are 422 with the RFC 6749 error code beside problem+json.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from kubejit.clock import FixedClock
from kubejit.errors import ClusterUnavailable
from kubejit.grants.exchange import WorkloadExchange, WorkloadIssuer
from kubejit.grants.ports import AuditEvent
from kubejit.grants.service import GrantService
from kubejit.identity.claims import ClaimMapping
from kubejit.identity.dev_issuer import DevIssuer
from kubejit.identity.oidc import OIDCIssuer, OIDCVerifier
from kubejit.ids import GrantId
from kubejit.policy.load import parse_policy
from kubejit.server.app import create_app
from kubejit.server.deps import Services
from kubejit.server.schemas import ClusterOut
from tests.fakes import FakeCluster, MemoryStore

pytestmark = pytest.mark.unit

ISS = "https://token.actions.example"
AUD = "https://kubejit.example"
POLICY = """
roles: {edit: {clusterRole: edit}, view: {clusterRole: view}}
rules: []
workloads:
  - name: deploy
    issuer: github
    github: {repository_id: "42", ref: refs/heads/main}
    clusters: [dev]
    namespaces: [app]
    roles: [edit]
"""
FORM = {
    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
    "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
}


class StaticKeys:
    def __init__(self, keys: KeySet) -> None:
        self.keys = keys

    def keys_for(self, kid: str | None) -> KeySet:
        return self.keys


class MemorySpent:
    def __init__(self, store: MemoryStore) -> None:
        self.seen: dict[tuple[str, str], datetime] = {}
        self.store = store

    def first_use(
        self, *, issuer: str, jti: str, keep_until: datetime, now: datetime, events: Sequence[AuditEvent] = ()
    ) -> bool:
        if (issuer, jti) in self.seen:
            return False
        self.seen[(issuer, jti)] = keep_until
        self.store.record(events)
        return True


@dataclass
class World:
    http: TestClient
    store: MemoryStore
    cluster: FakeCluster
    key: RSAKey
    clock: FixedClock
    serial: Iterator[int]

    def job_token(self, **overrides: Any) -> str:
        now = int(self.clock.now().timestamp())
        claims: dict[str, Any] = {
            "iss": ISS,
            "aud": AUD,
            "sub": "repo:acme/app:ref:refs/heads/main",
            "repository": "acme/app",
            "repository_id": "42",
            "repository_owner_id": "7",
            "ref": "refs/heads/main",
            "event_name": "push",
            "jti": f"jti-{next(self.serial)}",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)

    def exchange(self, token: str, **fields: str) -> Any:
        return self.http.post("/v1/token-exchange", data={**FORM, "subject_token": token, **fields})


@pytest.fixture
def world() -> Iterator[World]:
    clock, store, cluster = FixedClock(), MemoryStore(), FakeCluster()
    ids = (GrantId(f"g{i}") for i in itertools.count(1))
    service = GrantService(
        store=store,
        audit=store,
        clusters={"dev": cluster},
        policy=parse_policy(POLICY),
        clock=clock,
        id_factory=lambda: next(ids),
    )
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
    issuer = OIDCIssuer(
        url=ISS, audience=AUD, mapping=ClaimMapping("github", "github:"), required_claims=("jti",)
    )
    verifier = OIDCVerifier(issuer, keys=StaticKeys(KeySet([key])), clock=clock)
    exchange = WorkloadExchange(
        grants=service,
        issuers=[WorkloadIssuer(name="github", url=ISS, audience=AUD, verifier=verifier)],
        spent=MemorySpent(store),
    )
    dev_key = ECKey.generate_key("P-256", parameters={"kid": "d"}, private=True)
    dev = DevIssuer(users={}, key=dev_key, issuer="http://test/dev", clock=clock)
    services = Services(
        grants=service,
        authenticator=dev,
        clusters=[
            ClusterOut(
                name="dev", audience="a", server="https://127.0.0.1:6443", certificate_authority_data="Q0E="
            )
        ],
        exchange=exchange,
    )
    with TestClient(create_app(services)) as http:
        yield World(http, store, cluster, key, clock, itertools.count(1))


def test_a_job_token_becomes_an_active_grant_and_a_ready_kubeconfig(world: World) -> None:
    r = world.exchange(world.job_token())
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["cache-control"] == "no-store"
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    assert body["principal"] == "github:repo:acme/app:ref:refs/heads/main"
    assert (body["cluster"], body["namespaces"], body["role"]) == ("dev", ["app"], "edit")
    config = yaml.safe_load(body["kubeconfig"])
    assert config["contexts"][0]["context"]["namespace"] == "app"
    assert config["users"][0]["user"]["token"] == body["access_token"] == "secret-token-g1"
    assert config["clusters"][0]["cluster"] == {
        "server": "https://127.0.0.1:6443",
        "certificate-authority-data": "Q0E=",
    }
    grant = world.store.grants[GrantId("g1")]
    assert grant.state == "active" and grant.requester == body["principal"]
    assert world.store.actions()[:3] == ["token_exchange.accepted", "policy.decided", "grant.requested"]
    assert "secret-token" not in repr(world.store.events)


def test_json_bodies_and_explicit_targets_are_accepted(world: World) -> None:
    body = {
        **FORM,
        "subject_token": world.job_token(),
        "audience": "dev",
        "scope": "namespace:app role:edit duration:5m",
    }
    r = world.http.post("/v1/token-exchange", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["expires_in"] == 300


def refused(world: World, r: Any, status: int, error: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["error"] == error and body["error_description"] == body["detail"]
    assert world.store.grants == {} and world.cluster.objects == {}
    return body


def test_a_replayed_job_token_is_refused_and_audited(world: World) -> None:
    token = world.job_token()
    assert world.exchange(token).status_code == 200
    world.store.grants.clear()
    world.cluster.objects.clear()
    body = refused(world, world.exchange(token), 401, "invalid_grant")
    assert "replay" in body["detail"]
    assert world.store.actions()[-1] == "token_exchange.refused"


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"aud": "https://other.example"}, "aud"),
        ({"aud": [AUD, "https://other.example"]}, "several audiences but no authorized party"),
        ({"aud": [AUD, "https://other.example"], "azp": AUD}, "exactly this broker"),
        ({"iss": "https://evil.example"}, "not a workload issuer"),
        ({"exp": 1}, "expired"),
        ({"jti": None}, "jti"),
        ({"sub": None}, "sub"),
    ],
)
def test_bad_job_tokens_are_401_audited_and_create_nothing(
    world: World, claims: dict[str, Any], words: str
) -> None:
    body = refused(world, world.exchange(world.job_token(**claims)), 401, "invalid_grant")
    assert words in body["detail"]
    assert "kubejit login" not in body["hint"]  # a pipeline cannot log in
    assert world.store.actions() == ["token_exchange.refused"]


def test_an_unsigned_token_is_refused_before_any_key_is_looked_at(world: World) -> None:
    payload = world.job_token().split(".")[1]
    none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"  # {"alg":"none","typ":"JWT"}
    body = refused(world, world.exchange(f"{none_header}.{payload}."), 401, "invalid_grant")
    assert "not allowed" in body["detail"]


def test_a_token_signed_by_another_key_is_refused(world: World) -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
    claims = {"iss": ISS, "aud": AUD, "sub": "x", "jti": "j", "iat": 1, "exp": 2**31}
    forged = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, other)
    refused(world, world.exchange(forged), 401, "invalid_grant")


@pytest.mark.parametrize(
    ("claims", "rule"),
    [
        (
            {"event_name": "pull_request", "ref": "refs/pull/3/merge", "head_ref": "patch-1"},
            "pull-request-refused",
        ),
        ({"repository_id": "43"}, "default-deny"),
        ({"ref": "refs/heads/feature"}, "default-deny"),
    ],
)
def test_jobs_policy_refuses_get_403_with_the_rule_and_an_audit_record(
    world: World, claims: dict[str, Any], rule: str
) -> None:
    body = refused(world, world.exchange(world.job_token(**claims)), 403, "invalid_target")
    assert body["rule"] == rule
    denied = [e for e in world.store.events if e.action == "grant.request_denied"]
    assert len(denied) == 1 and denied[0].details["claims"]["repository"] == "acme/app"
    (decided,) = [e for e in world.store.events if e.action == "policy.decided"]
    assert decided.outcome == "deny" and decided.details["rule"] == rule and decided.details["workload"]
    if rule == "default-deny":
        assert "'42'" not in body["detail"] and "deploy" not in body["detail"]  # pins stay private
        assert "is not" in decided.details["near_miss"]  # ...but the operator sees the mismatch


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "invalid_request"),
        ({"scope": "everything"}, "invalid_scope"),
        ({"scope": "duration:forever"}, "invalid_request"),
        ({"resource": "https://x"}, "invalid_request"),
        ({"audience": "Not_A_Cluster"}, "invalid_request"),
    ],
)
def test_malformed_requests_are_422_with_the_oauth_error(
    world: World, fields: dict[str, str], error: str
) -> None:
    refused(world, world.exchange(world.job_token(), **fields), 422, error)


def test_a_missing_subject_token_and_a_broker_without_exchange(world: World) -> None:
    r = world.http.post("/v1/token-exchange", data=FORM)
    refused(world, r, 422, "invalid_request")
    crowded = "&".join(f"f{n}=x" for n in range(40))
    headers = {"content-type": "application/x-www-form-urlencoded"}
    refused(
        world, world.http.post("/v1/token-exchange", content=crowded, headers=headers), 422, "invalid_request"
    )
    refused(
        world, world.http.post("/v1/token-exchange", json=["not", "an", "object"]), 422, "invalid_request"
    )
    world.http.app.state.services.exchange = None  # type: ignore[attr-defined]
    refused(world, world.exchange(world.job_token()), 404, "invalid_target")


def test_the_grant_ends_like_any_other(world: World) -> None:
    assert world.exchange(world.job_token()).status_code == 200
    world.clock.advance(timedelta(minutes=16))
    services = world.http.app.state.services  # type: ignore[attr-defined]
    (ended,) = services.grants.expire_due()
    assert ended.state == "expired" and world.cluster.objects == {}


def test_a_grant_whose_token_cannot_be_minted_is_ended_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(grant: Any, *, expiration_seconds: int) -> Any:
        raise ClusterUnavailable("the API server did not answer")

    monkeypatch.setattr(world.cluster, "mint_token", unavailable)
    r = world.exchange(world.job_token())
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "temporarily_unavailable"
    (grant,) = world.store.grants.values()
    assert grant.state == "revoked" and world.cluster.objects == {}  # nobody holds a token for it
    assert "token_exchange.refused" in world.store.actions()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "attack", ["nbf in the future", "iat in the future", "tampered", "hs256", "unknown kid"]
)
def test_the_rest_of_the_hostile_corpus_is_401_and_creates_nothing(world: World, attack: str) -> None:
    now = int(world.clock.now().timestamp())
    if attack.endswith("in the future"):
        token = world.job_token(**{attack[:3]: now + 3600})
    else:
        header, payload, signature = world.job_token().split(".")
        if attack == "tampered":  # another repository's id under the original signature
            claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
            token = f"{header}.{_b64(json.dumps({**claims, 'repository_id': '43'}).encode())}.{signature}"
        elif attack == "hs256":  # the RSA public key used as an HMAC secret
            header = _b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
            secret = world.key.as_pem(private=False)
            mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            token = f"{header}.{payload}.{_b64(mac)}"
        else:
            token = f"{_b64(json.dumps({'alg': 'RS256', 'kid': 'nope'}).encode())}.{payload}.{signature}"
    refused(world, world.exchange(token), 401, "invalid_grant")
    assert world.store.actions() == ["token_exchange.refused"]
