"""Hostile bearer tokens against the broker's API: each one 401, each one audited, nothing created.

The broker trusts one OIDC issuer, a real HTTP issuer with real keys on loopback
(``kubejit.testing.oidc_issuer``). Every token below is aimed at a request the policy would grant
at once to the person it claims to be; a well-formed token from the issuer shows that it would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey

from kubejit.testing.clients import admin_client
from kubejit.testing.oidc_issuer import LocalIssuer
from tests.broker_identity import BrokerIdentity
from tests.broker_process import Broker
from tests.e2e.conftest import owned_objects

pytestmark = pytest.mark.e2e

AUDIENCE = "kubejit"
POLICY = """
roles:
  edit: {clusterRole: edit}
adminGroups: [platform-admins]
rules:
  - name: developers-edit
    groups: [corp:developers]
    clusters: ["*"]
    namespaces: ["e2e-*"]
    roles: [edit]
    duration: {default: 1h, max: 4h}
    approval: auto
"""


@pytest.fixture
def idp() -> Iterator[LocalIssuer]:
    with LocalIssuer(path="/corp") as issuer:
        yield issuer


@pytest.fixture
def broker(
    tmp_path: Path, idp: LocalIssuer, broker_identity: BrokerIdentity, second_broker_identity: BrokerIdentity
) -> Iterator[Broker]:
    issuer = {"name": "corp", "issuerUrl": idp.url, "audience": AUDIENCE}
    running = Broker(
        tmp_path / "broker",
        [broker_identity, second_broker_identity],
        policy=POLICY,
        extra_config={
            "identity": {"issuers": [issuer]},
            "devIssuer": {"enabled": False},
            # Each refusal's own record, to check each reason (by default repeats become one count).
            "broker": {"rateLimits": {"authFailureSummarySeconds": 0}},
        },
    )
    running.workdir.mkdir()
    running.start()
    yield running
    running.stop()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(data: dict[str, Any]) -> str:
    return _b64(json.dumps(data).encode())


def _person(**over: Any) -> dict[str, Any]:
    return {"sub": "mallory", "aud": AUDIENCE, "groups": ["developers"], **over}


def hostile_tokens(idp: LocalIssuer) -> dict[str, str]:
    now = int(time.time())
    key = idp.signing_key
    good_header = {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    claims = idp.claims(_person())
    attacker = RSAKey.generate_key(2048, parameters={"kid": "attacker-1"}, private=True)
    impostor = RSAKey.generate_key(2048, parameters={"kid": str(key.kid)}, private=True)
    hs_input = f"{_segment({'alg': 'HS256', 'kid': key.kid, 'typ': 'JWT'})}.{_segment(claims)}"
    hs_mac = hmac.new(key.as_pem(private=False), hs_input.encode(), hashlib.sha256).digest()
    header, _, signature = idp.issue(_person()).split(".")
    return {
        "alg none": f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims)}.",
        "alg none with kid": f"{_segment({**good_header, 'alg': 'none'})}.{_segment(claims)}.",
        "HS256 signed with the RSA public key": f"{hs_input}.{_b64(hs_mac)}",
        "wrong iss": idp.issue(_person(iss="http://127.0.0.1:1/corp")),
        "iss with a trailing slash": idp.issue(_person(iss=idp.url + "/")),
        "wrong aud": idp.issue(_person(aud="someone-else")),
        "expired": idp.issue(_person(iat=now - 7200, nbf=now - 7200, exp=now - 3600)),
        "nbf in the future": idp.issue(_person(nbf=now + 3600)),
        "issued in the future": idp.issue(_person(iat=now + 3600)),
        "no exp": idp.issue(_person(exp=None)),
        "unknown kid": idp.issue(_person(), key=attacker),
        "jku pointing at the attacker's keys": idp.issue(
            _person(), key=attacker, header={"jku": "http://127.0.0.1:1/attacker/keys"}
        ),
        "the issuer's kid, another key": idp.issue(_person(), key=impostor),
        "tampered payload": f"{header}.{_segment({**claims, 'groups': ['developers', 'platform-admins']})}.{signature}",
        "not a JWT": "not-a-jwt",
    }


def _audit_details(broker: Broker, action: str) -> list[dict[str, Any]]:
    with sqlite3.connect(broker.workdir / "kubejit.db") as db:
        rows = db.execute(
            "SELECT details FROM audit_events WHERE action = ? ORDER BY seq", (action,)
        ).fetchall()
    return [json.loads(details) for (details,) in rows]


def _auth_failures(broker: Broker) -> list[dict[str, Any]]:
    return _audit_details(broker, "auth.failed")


def _grant_rows(broker: Broker) -> int:
    with sqlite3.connect(broker.workdir / "kubejit.db") as db:
        return int(db.execute("SELECT count(*) FROM grants").fetchone()[0])


def test_hostile_tokens_are_refused_audited_and_create_nothing(
    broker: Broker,
    idp: LocalIssuer,
    namespaces: Callable[..., list[str]],
    broker_identity: BrokerIdentity,
    second_broker_identity: BrokerIdentity,
) -> None:
    plane = broker_identity.plane
    (namespace,) = namespaces(plane, 1)
    body = {"cluster": plane.name, "namespaces": [namespace], "role": "edit", "reason": "hostile"}
    planes = [broker_identity.plane, second_broker_identity.plane]
    clients = [admin_client(p) for p in planes]
    try:
        before = [owned_objects(c) for c in clients]
        corpus = hostile_tokens(idp)
        for name, token in corpus.items():
            answer = httpx.post(
                f"{broker.url}/v1/grants", json=body, headers={"authorization": f"Bearer {token}"}, timeout=30
            )
            assert answer.status_code == 401, f"{name}: {answer.status_code} {answer.text}"
            assert answer.json()["code"] == "unauthenticated", name
        failures = _auth_failures(broker)
        assert len(failures) == len(corpus)
        assert all(f["path"] == "/v1/grants" for f in failures)
        reasons = dict(zip(corpus, (f["error"] for f in failures), strict=True))
        assert "algorithm 'none' is not allowed" in reasons["alg none"]
        assert "algorithm 'HS256' is not allowed" in reasons["HS256 signed with the RSA public key"]
        assert "not trusted" in reasons["wrong iss"] and "not trusted" in reasons["iss with a trailing slash"]
        assert "aud" in reasons["wrong aud"] and "expired" in reasons["expired"]
        assert "not yet valid" in reasons["nbf in the future"]
        assert "does not publish" in reasons["unknown kid"]
        assert "does not publish" in reasons["jku pointing at the attacker's keys"]
        assert "signature" in reasons["tampered payload"]
        audit_text = json.dumps(failures)
        assert not any(token in audit_text for token in corpus.values() if len(token) > 20)  # no secrets
        assert _grant_rows(broker) == 0
        assert [owned_objects(c) for c in clients] == before

        # The same request with a genuine token from the issuer is granted at once.
        good = idp.issue(_person())
        answer = httpx.post(
            f"{broker.url}/v1/grants", json=body, headers={"authorization": f"Bearer {good}"}, timeout=30
        )
        assert answer.status_code == 201, answer.text
        assert (answer.json()["state"], answer.json()["requester"]) == ("active", "corp:mallory")
        assert len(_auth_failures(broker)) == len(corpus)
        # Its first use is the session's login record; later requests with it are not logins again.
        httpx.get(f"{broker.url}/v1/grants", headers={"authorization": f"Bearer {good}"}, timeout=30)
        logins = _audit_details(broker, "auth.login")
        assert [(e["issuer"], e["source_ip"]) for e in logins] == [("corp", "127.0.0.1")]
        assert idp.requests["/corp/keys"] == 1  # made-up kids did not make the broker hammer the IdP
    finally:
        for c in clients:
            c.close()


def test_a_flood_of_bad_tokens_is_cut_off_and_summarised_by_a_real_broker(
    tmp_path: Path, broker_identity: BrokerIdentity
) -> None:
    """Shipped limits: 200 bad tokens → 60 answered 401, the rest 429; two auth.failed events once
    the broker has stopped (the first at once, one summary flushed at shutdown with the count)."""
    running = Broker(tmp_path / "flood", [broker_identity])
    running.workdir.mkdir()
    running.start()
    try:
        with httpx.Client(base_url=running.url, timeout=30) as http:
            answers = [
                http.get("/v1/grants", headers={"authorization": f"Bearer bad-{n}"}) for n in range(200)
            ]
        statuses = [a.status_code for a in answers]
        assert 60 <= statuses.count(401) <= 70 and statuses.count(429) == 200 - statuses.count(401)
        assert int(answers[-1].headers["retry-after"]) >= 1
        assert answers[-1].json()["code"] == "rate-limited"
        assert len(_auth_failures(running)) == 1
    finally:
        running.stop()
    first, summary = _auth_failures(running)
    assert "count" not in first and summary["count"] == 199 and summary["source_ip"] == "127.0.0.1"
    assert summary["first_at"] <= summary["last_at"]
