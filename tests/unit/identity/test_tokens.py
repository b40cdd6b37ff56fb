from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from kubejit.clock import FixedClock
from kubejit.errors import AuthenticationFailed, NotFound
from kubejit.identity.dev_issuer import DevIssuer

pytestmark = pytest.mark.unit


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 5, 1, tzinfo=UTC))


@pytest.fixture
def issuer(clock: FixedClock) -> DevIssuer:
    key = ECKey.generate_key("P-256", parameters={"kid": "dev-1"}, private=True)
    users = {"alice": frozenset({"developers"}), "bob": frozenset({"sre"})}
    return DevIssuer(
        users=users, key=key, issuer="http://127.0.0.1:1/dev", clock=clock, token_ttl_seconds=600
    )


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_issued_token_authenticates_with_configured_groups(issuer: DevIssuer) -> None:
    who = issuer.authenticate(issuer.issue("alice"))
    assert (who.name, who.groups) == ("alice", frozenset({"developers"}))


def test_unknown_user_cannot_get_a_token(issuer: DevIssuer) -> None:
    with pytest.raises(NotFound) as caught:
        issuer.issue("eve")
    # Whoever asks must not learn whom to log in as.
    assert caught.value.message == "no dev user 'eve'" and "alice" not in (caught.value.hint or "")


def test_expired_token_is_rejected(issuer: DevIssuer, clock: FixedClock) -> None:
    token = issuer.issue("alice")
    clock.advance(timedelta(seconds=600 + 31))
    with pytest.raises(AuthenticationFailed):
        issuer.authenticate(token)


def test_tampered_payload_is_rejected(issuer: DevIssuer) -> None:
    header, _, signature = issuer.issue("alice").split(".")
    forged = _b64({"sub": "bob", "iss": issuer.rules.issuer, "aud": "kubejit", "exp": 2**40, "iat": 0})
    with pytest.raises(AuthenticationFailed):
        issuer.authenticate(f"{header}.{forged}.{signature}")


def test_alg_none_and_hmac_are_rejected(issuer: DevIssuer, clock: FixedClock) -> None:
    now = int(clock.now().timestamp())
    claims = {"sub": "alice", "iss": issuer.rules.issuer, "aud": "kubejit", "exp": now + 60, "iat": now}
    unsigned = f"{_b64({'alg': 'none'})}.{_b64(claims)}."
    with pytest.raises(AuthenticationFailed):
        issuer.authenticate(unsigned)
    hmac = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(b"k" * 32))
    with pytest.raises(AuthenticationFailed):
        issuer.authenticate(hmac)


def test_token_from_another_key_is_rejected(issuer: DevIssuer, clock: FixedClock) -> None:
    other_key = ECKey.generate_key("P-256", parameters={"kid": "dev-1"}, private=True)
    other = DevIssuer(users=issuer.users, key=other_key, issuer=issuer.rules.issuer, clock=clock)
    with pytest.raises(AuthenticationFailed):
        issuer.authenticate(other.issue("alice"))


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 20000, "a.b"])
def test_garbage_is_rejected(issuer: DevIssuer, garbage: str) -> None:
    with pytest.raises(AuthenticationFailed):
        issuer.authenticate(garbage)
