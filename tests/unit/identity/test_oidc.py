"""OIDC verification rules, pure: keys in memory, time fixed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import warnings
from datetime import UTC, datetime
from typing import Any

import pytest
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from kubejit.clock import FixedClock
from kubejit.errors import AuthenticationFailed
from kubejit.identity.claims import ClaimMapping, principal_from_claims
from kubejit.identity.oidc import IssuerSet, OIDCIssuer, OIDCVerifier

pytestmark = pytest.mark.unit

ISS = "https://idp.example.com"
NOW = datetime(2026, 5, 1, tzinfo=UTC)
RSA = RSAKey.generate_key(2048, parameters={"kid": "r1"}, private=True)
EC = ECKey.generate_key("P-256", parameters={"kid": "e1"}, private=True)
ED = OKPKey.generate_key("Ed25519", parameters={"kid": "o1"}, private=True)
OTHER = RSAKey.generate_key(2048, parameters={"kid": "r1"}, private=True)  # same kid, other key


class StaticKeys:
    def __init__(self, *keys: Any) -> None:
        self.keys = KeySet(list(keys))
        self.asked: list[str | None] = []

    def keys_for(self, kid: str | None) -> KeySet:
        self.asked.append(kid)
        return self.keys


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**over: Any) -> dict[str, Any]:
    now = int(NOW.timestamp())
    base = {"iss": ISS, "aud": "kubejit", "sub": "u1", "email": "alice@example.com", "email_verified": True}
    base.update(iat=now, nbf=now, exp=now + 300, groups=["dev"])
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sign(body: dict[str, Any], key: Any = RSA, alg: str = "RS256", **header: Any) -> str:
    with warnings.catch_warnings():  # joserfc flags "EdDSA" as renamed (RFC 9864) when signing
        warnings.simplefilter("ignore", SecurityWarning)
        return jwt.encode({"alg": alg, "kid": key.kid, **header}, body, key, algorithms=[alg])


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def verifier(clock: FixedClock) -> OIDCVerifier:
    issuer = OIDCIssuer(
        url=ISS,
        audience="kubejit",
        mapping=ClaimMapping(issuer_name="corp", prefix="corp:", username_claim="email"),
        required_claims=("email",),
    )
    return OIDCVerifier(issuer, keys=StaticKeys(RSA, EC, ED), clock=clock)


@pytest.mark.parametrize("key,alg", [(RSA, "RS256"), (EC, "ES256"), (ED, "EdDSA")])
def test_allowed_algorithms_authenticate(verifier: OIDCVerifier, key: Any, alg: str) -> None:
    who = verifier.authenticate(sign(claims(), key, alg))
    assert (who.name, who.groups, who.issuer) == ("corp:alice@example.com", frozenset({"corp:dev"}), "corp")


def test_audience_in_a_list_is_accepted(verifier: OIDCVerifier) -> None:
    assert verifier.verify(sign(claims(aud=["kubejit"])))["sub"] == "u1"
    # Several audiences: only with azp naming this broker (OIDC Core 3.1.3.7).
    assert verifier.verify(sign(claims(aud=["other", "kubejit"], azp="kubejit")))["sub"] == "u1"
    with pytest.raises(AuthenticationFailed, match="azp"):
        verifier.verify(sign(claims(aud=["other", "kubejit"])))


def test_alg_none_is_refused(verifier: OIDCVerifier) -> None:
    body = _b64(json.dumps(claims()).encode())
    token = f"{_b64(json.dumps({'alg': 'none', 'kid': 'r1'}).encode())}.{body}."
    with pytest.raises(AuthenticationFailed, match="algorithm 'none' is not allowed"):
        verifier.verify(token)


def test_hs256_signed_with_the_public_key_is_refused(verifier: OIDCVerifier) -> None:
    public_pem = RSA.as_pem(private=False)
    signing_input = (
        f"{_b64(json.dumps({'alg': 'HS256', 'kid': 'r1'}).encode())}.{_b64(json.dumps(claims()).encode())}"
    )
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(AuthenticationFailed, match="algorithm 'HS256' is not allowed"):
        verifier.verify(f"{signing_input}.{_b64(mac)}")


@pytest.mark.parametrize(
    "body,reason",
    [
        (claims(iss="https://evil.example.com"), "iss"),
        (claims(aud="someone-else"), "aud"),
        (claims(exp=int(NOW.timestamp()) - 31), "expired"),
        (claims(nbf=int(NOW.timestamp()) + 60), "not yet valid"),
        (claims(iat=int(NOW.timestamp()) + 60), "future"),
        (claims(email=None), "email"),
        (claims(sub=None), "sub"),
        (claims(exp=None), "exp"),
    ],
)
def test_registered_and_required_claims_are_enforced(
    verifier: OIDCVerifier, body: dict[str, Any], reason: str
) -> None:
    with pytest.raises(AuthenticationFailed, match=reason):
        verifier.verify(sign(body))


def test_leeway_tolerates_small_skew(verifier: OIDCVerifier) -> None:
    now = int(NOW.timestamp())
    assert verifier.verify(sign(claims(exp=now - 20, nbf=now + 20, iat=now + 20)))


def test_a_key_the_issuer_does_not_publish_is_refused(verifier: OIDCVerifier) -> None:
    stranger = RSAKey.generate_key(2048, parameters={"kid": "nope"}, private=True)
    with pytest.raises(AuthenticationFailed, match="does not publish"):
        verifier.verify(sign(claims(), stranger))


def test_same_kid_other_key_fails_the_signature(verifier: OIDCVerifier) -> None:
    with pytest.raises(AuthenticationFailed, match="token rejected"):
        verifier.verify(sign(claims(), OTHER))


def test_tampered_payload_is_refused(verifier: OIDCVerifier) -> None:
    header, _, signature = sign(claims()).split(".")
    forged = _b64(json.dumps(claims(groups=["platform-admins"])).encode())
    with pytest.raises(AuthenticationFailed, match="token rejected"):
        verifier.verify(f"{header}.{forged}.{signature}")


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d.e", "!!.!!.!!", "x" * 20000])
def test_garbage_is_refused(verifier: OIDCVerifier, token: str) -> None:
    with pytest.raises(AuthenticationFailed):
        verifier.verify(token)


@pytest.mark.parametrize("flag", [False, "false", "False", None, "yes", 1, "1"])  # None: claim missing
def test_unverified_email_is_not_a_username(verifier: OIDCVerifier, flag: Any) -> None:
    with pytest.raises(AuthenticationFailed, match="not verified"):
        verifier.authenticate(sign(claims(email_verified=flag)))


def test_prefixes_keep_two_issuers_apart() -> None:
    body = {"sub": "alice", "groups": ["admins"]}
    a = principal_from_claims(body, ClaimMapping(issuer_name="a", prefix="a:"))
    b = principal_from_claims(body, ClaimMapping(issuer_name="b", prefix="b:", groups_prefix=""))
    assert (a.name, a.groups) == ("a:alice", frozenset({"a:admins"}))
    assert (b.name, b.groups) == ("b:alice", frozenset({"admins"}))


@pytest.mark.parametrize(
    "body",
    [
        {"sub": ""},
        {"sub": 7},
        {"sub": "a b"},
        {"sub": "x\n"},
        {"sub": "alice\u200b"},  # invisible: would read as alice in audit records
        {"sub": "\u202ecilA"},  # a bidi override
        {"sub": "ok", "groups": ["ops\u00a0"]},
        {"sub": "ok", "groups": "two words"},
        {"sub": "ok", "groups": [1]},
        {"sub": "ok", "groups": {"a": 1}},
    ],
)
def test_unusable_names_and_groups_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(AuthenticationFailed):
        principal_from_claims(body, ClaimMapping(issuer_name="a", prefix="a:"))


def test_a_name_must_fit_the_requester_column_with_its_prefix() -> None:
    mapping = ClaimMapping(issuer_name="a", prefix="p" * 60 + ":")
    assert len(principal_from_claims({"sub": "x" * 194}, mapping).name) == 255
    with pytest.raises(AuthenticationFailed, match="not a usable name"):
        principal_from_claims({"sub": "x" * 195}, mapping)


def test_groups_claim_may_be_absent_or_one_string() -> None:
    mapping = ClaimMapping(issuer_name="a", prefix="a:")
    assert principal_from_claims({"sub": "x"}, mapping).groups == frozenset()
    assert principal_from_claims({"sub": "x", "groups": "ops"}, mapping).groups == frozenset({"a:ops"})
    no_groups = ClaimMapping(issuer_name="a", prefix="a:", groups_claim=None)
    assert principal_from_claims({"sub": "x", "groups": ["ops"]}, no_groups).groups == frozenset()


def test_issuer_set_routes_by_iss_and_refuses_strangers(verifier: OIDCVerifier) -> None:
    issuers = IssuerSet([verifier])
    assert issuers.authenticate(sign(claims())).name == "corp:alice@example.com"
    with pytest.raises(AuthenticationFailed, match="not trusted"):
        issuers.authenticate(sign(claims(iss="https://elsewhere.example.com")))
    with pytest.raises(AuthenticationFailed, match="not trusted"):
        issuers.authenticate(sign(claims(iss=None)))
