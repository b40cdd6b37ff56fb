"""The pure parts of the login grants the CLI runs: PKCE (RFC 7636), the authorization request and its
callback (RFC 6749 4.1 with a loopback redirect, RFC 8252), and the device grant's polling rules
(RFC 8628 3.5). No I/O: ``kubejit.cli.login_flows`` does the HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

from kubejit.errors import AuthenticationFailed

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: RFC 8628 3.5: "slow_down" adds 5 seconds to the interval, for this and all later requests.
SLOW_DOWN_SECONDS = 5
DEFAULT_INTERVAL_SECONDS = 5


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str
    method: str = "S256"


def new_pkce() -> Pkce:
    verifier = secrets.token_urlsafe(64)[:96]  # 43..128 characters of the unreserved set
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return Pkce(verifier=verifier, challenge=base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    nonce: str
    redirect_uri: str
    pkce: Pkce


def authorization_request(
    endpoint: str, *, client_id: str, scopes: list[str], redirect_uri: str
) -> AuthorizationRequest:
    pkce, state, nonce = new_pkce(), secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": pkce.challenge,
            "code_challenge_method": pkce.method,
        }
    )
    separator = "&" if "?" in endpoint else "?"
    return AuthorizationRequest(f"{endpoint}{separator}{query}", state, nonce, redirect_uri, pkce)


def code_from_callback(request: AuthorizationRequest, callback_path: str) -> str:
    """The authorization code from the redirect to our loopback listener, after checking ``state``."""
    params = {k: v[0] for k, v in parse_qs(urlsplit(callback_path).query).items()}
    if params.get("state") != request.state:
        raise AuthenticationFailed(
            "the login callback does not belong to this login (state mismatch)",
            hint="Run `kubejit login` again; close other login tabs first.",
        )
    if "error" in params:
        detail = params.get("error_description") or params["error"]
        raise AuthenticationFailed(f"the identity provider refused the login: {detail[:200]}")
    code = params.get("code")
    if not code:
        raise AuthenticationFailed("the login callback carries no authorization code")
    return code


PollAction = Literal["done", "wait", "slow_down", "denied", "expired", "error"]


def device_poll_outcome(status: int, body: dict[str, Any]) -> PollAction:
    """What a device-grant token response means (RFC 8628 3.5)."""
    if status == 200 and body.get("id_token"):
        return "done"
    error = body.get("error")
    if error == "authorization_pending":
        return "wait"
    if error == "slow_down":
        return "slow_down"
    if error == "access_denied":
        return "denied"
    if error == "expired_token":
        return "expired"
    return "error"


def next_interval(current: float, action: PollAction) -> float:
    return current + SLOW_DOWN_SECONDS if action == "slow_down" else current


def check_nonce(id_token_claims: dict[str, Any], expected: str) -> None:
    """The ID token must answer this login's request (replay of another login's token otherwise)."""
    if id_token_claims.get("nonce") != expected:
        raise AuthenticationFailed("the ID token does not answer this login (nonce mismatch)")
