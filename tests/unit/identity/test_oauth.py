"""The login grants' rules: PKCE, the authorization callback, device polling (RFC 7636, 8252, 8628)."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from kubejit.errors import AuthenticationFailed
from kubejit.identity import oauth

pytestmark = pytest.mark.unit


def test_pkce_challenge_is_the_s256_of_the_verifier() -> None:
    pkce = oauth.new_pkce()
    assert 43 <= len(pkce.verifier) <= 128
    digest = hashlib.sha256(pkce.verifier.encode()).digest()
    assert pkce.challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert oauth.new_pkce().verifier != pkce.verifier


def _request() -> oauth.AuthorizationRequest:
    return oauth.authorization_request(
        "https://idp/auth",
        client_id="cli",
        scopes=["openid", "groups"],
        redirect_uri="http://127.0.0.1:5000/callback",
    )


def test_authorization_url_carries_pkce_state_and_nonce() -> None:
    request = _request()
    query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
    assert query["code_challenge"] == request.pkce.challenge and query["code_challenge_method"] == "S256"
    assert (query["state"], query["nonce"], query["scope"]) == (request.state, request.nonce, "openid groups")
    assert query["redirect_uri"] == "http://127.0.0.1:5000/callback" and query["response_type"] == "code"


def test_callback_with_our_state_gives_the_code() -> None:
    request = _request()
    assert oauth.code_from_callback(request, f"/callback?code=abc&state={request.state}") == "abc"


@pytest.mark.parametrize(
    "query,message",
    [
        ("code=abc&state=someone-else", "state mismatch"),
        ("code=abc", "state mismatch"),
        ("error=access_denied&state={state}", "refused the login: access_denied"),
        ("state={state}", "no authorization code"),
    ],
)
def test_bad_callbacks_are_refused(query: str, message: str) -> None:
    request = _request()
    with pytest.raises(AuthenticationFailed, match=message):
        oauth.code_from_callback(request, "/callback?" + query.format(state=request.state))


@pytest.mark.parametrize(
    "status,body,action",
    [
        (200, {"id_token": "x"}, "done"),
        (200, {}, "error"),
        (400, {"error": "authorization_pending"}, "wait"),
        (400, {"error": "slow_down"}, "slow_down"),
        (400, {"error": "access_denied"}, "denied"),
        (400, {"error": "expired_token"}, "expired"),
        (400, {"error": "invalid_client"}, "error"),
        (500, {}, "error"),
    ],
)
def test_device_poll_outcomes(status: int, body: dict[str, str], action: str) -> None:
    assert oauth.device_poll_outcome(status, body) == action


def test_slow_down_adds_five_seconds_for_good() -> None:
    interval = oauth.next_interval(5, "slow_down")
    assert interval == 10 and oauth.next_interval(interval, "wait") == 10


def test_nonce_must_match() -> None:
    oauth.check_nonce({"nonce": "n1"}, "n1")
    with pytest.raises(AuthenticationFailed, match="nonce"):
        oauth.check_nonce({"nonce": "n2"}, "n1")
    with pytest.raises(AuthenticationFailed, match="nonce"):
        oauth.check_nonce({}, "n1")
