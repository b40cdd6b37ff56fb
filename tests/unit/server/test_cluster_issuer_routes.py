"""The issuer endpoints clusters in jwt mode fetch: public, no token needed, 404 without jwt mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey

from kubejit.clock import FixedClock
from kubejit.grants.service import GrantService
from kubejit.identity.cluster_keys import ClusterKeyRing
from kubejit.identity.cluster_tokens import ClusterTokenIssuer
from kubejit.identity.dev_issuer import DevIssuer
from kubejit.policy.load import parse_policy
from kubejit.server.app import create_app
from kubejit.server.deps import Services
from tests.fakes import FakeCluster, MemoryStore

pytestmark = pytest.mark.unit

POLICY = "roles: {view: {clusterRole: view}}\nrules: []\n"


def app(cluster_issuer: ClusterTokenIssuer | None) -> TestClient:
    clock = FixedClock()
    store = MemoryStore()
    service = GrantService(
        store=store, audit=store, clusters={"dev": FakeCluster()}, policy=parse_policy(POLICY), clock=clock
    )
    key = ECKey.generate_key("P-256", parameters={"kid": "k"}, private=True)
    dev = DevIssuer(users={}, key=key, issuer="http://test/dev", clock=clock)
    services = Services(grants=service, authenticator=dev, clusters=[], cluster_issuer=cluster_issuer)
    return TestClient(create_app(services), client=("10.0.0.9", 50000))


def test_discovery_and_jwks_are_served_without_a_token(tmp_path: Path) -> None:
    clock = FixedClock()
    keys = ClusterKeyRing(tmp_path / "keys", clock=clock, overlap_seconds=300, rotate_after_seconds=86400)
    issuer = ClusterTokenIssuer(
        issuer_url="https://broker.example/k8s", keys=keys, lifetime_seconds=300, clock=clock
    )
    with app(issuer) as http:
        discovery = http.get("/k8s/.well-known/openid-configuration")
        assert discovery.status_code == 200
        assert discovery.json()["jwks_uri"] == "https://broker.example/k8s/jwks"
        jwks = http.get("/k8s/jwks")
        assert jwks.status_code == 200 and jwks.headers["content-type"] == "application/jwk-set+json"
        (key,) = jwks.json()["keys"]
        assert key["kid"] == keys.signing_key().kid and "d" not in key


def test_without_a_jwt_mode_cluster_there_is_no_issuer() -> None:
    with app(None) as http:
        answer = http.get("/k8s/jwks")
        assert answer.status_code == 404
        assert "jwt mode" in answer.json()["detail"]
