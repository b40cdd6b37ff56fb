"""Where people sign in to the web pages: the configured OIDC issuer, or the dev issuer's own page.

Both speak the same protocol to the pages: an authorization URL carrying state, nonce and a PKCE
S256 challenge, then a code redeemed with the verifier for an ID token that the broker verifies the
normal way (the issuer's verifier: signature, iss, aud, exp) before the nonce is compared.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import httpx

from kubejit.clock import Clock
from kubejit.errors import AuthenticationFailed, InvalidInput
from kubejit.identity.claims import principal_from_claims
from kubejit.identity.dev_issuer import DevIssuer
from kubejit.identity.discovery import ProviderMetadata, discover
from kubejit.identity.oidc import OIDCVerifier
from kubejit.identity.principal import Principal
from kubejit.web.sessions import pkce_challenge

#: A dev authorization code must be redeemed within this.
DEV_CODE_TTL = timedelta(seconds=60)


class SignInIssuer(Protocol):
    #: Shown on the sign-in button.
    name: str

    def authorization_url(self, *, redirect_uri: str, state: str, nonce: str, code_challenge: str) -> str: ...

    def redeem(self, *, code: str, code_verifier: str, redirect_uri: str, nonce: str) -> Principal:
        """The signed-in principal; AuthenticationFailed when the code, the token or the nonce is wrong."""
        ...


def _nonce_matches(claims: dict[str, Any], nonce: str) -> None:
    offered = claims.get("nonce")
    if not isinstance(offered, str) or not hmac.compare_digest(offered, nonce):
        raise AuthenticationFailed(
            "sign-in refused: the ID token's nonce is not this sign-in's", hint="Sign in again from /ui/."
        )


class OidcSignIn:
    """Authorization code + PKCE at an OIDC provider; the code is redeemed by the broker, server-side."""

    def __init__(
        self,
        verifier: OIDCVerifier,
        *,
        client_id: str,
        client_secret: str | None,
        scopes: list[str],
        http: httpx.Client,
    ) -> None:
        self.name = verifier.issuer.name
        self._verifier = verifier
        self._client_id = client_id
        self._client_secret = client_secret
        self._scopes = scopes
        self._http = http
        self._metadata: ProviderMetadata | None = None

    def _endpoints(self) -> ProviderMetadata:
        if self._metadata is None:
            self._metadata = discover(self._http, self._verifier.issuer.url)
        return self._metadata

    def authorization_url(self, *, redirect_uri: str, state: str, nonce: str, code_challenge: str) -> str:
        endpoint = self._endpoints().authorization_endpoint
        if endpoint is None:
            raise AuthenticationFailed(f"issuer {self.name} publishes no authorization_endpoint")
        query = {
            "response_type": "code",
            "client_id": self._client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self._scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"

    def redeem(self, *, code: str, code_verifier: str, redirect_uri: str, nonce: str) -> Principal:
        endpoint = self._endpoints().token_endpoint
        if endpoint is None:
            raise AuthenticationFailed(f"issuer {self.name} publishes no token_endpoint")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self._client_id,
            "code_verifier": code_verifier,
        }
        headers = {"accept": "application/json"}
        if self._client_secret:  # client_secret_basic (RFC 6749 2.3.1); a public client sends none
            pair = f"{quote(self._client_id, safe='')}:{quote(self._client_secret, safe='')}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            response = self._http.post(endpoint, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise AuthenticationFailed(
                f"cannot reach {self.name}'s token endpoint: {type(exc).__name__}",
                hint="Try again; if it persists the identity provider is down.",
            ) from exc
        body = _json_object(response)
        if response.status_code != 200 or not isinstance(body.get("id_token"), str):
            error = str(body.get("error", f"HTTP {response.status_code}"))[:80]
            raise AuthenticationFailed(f"{self.name} refused the sign-in code: {error}")
        claims = self._verifier.verify(body["id_token"], audience=self._client_id)
        _nonce_matches(claims, nonce)
        return principal_from_claims(claims, self._verifier.issuer.mapping)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@dataclass(frozen=True)
class _DevCode:
    user: str
    nonce: str
    challenge: str
    redirect_uri: str
    until: datetime


class DevSignIn:
    """The dev issuer's authorization endpoint (a user picker page, dev only) and its code redemption.

    Codes live in this process: the dev issuer only runs on a loopback broker, one replica. The ID
    token is the dev issuer's ordinary one, verified by the same verifier as ``kubejit login``'s.
    """

    name = "the development issuer"

    def __init__(self, issuer: DevIssuer, *, clock: Clock) -> None:
        self.issuer = issuer
        self._clock = clock
        self._codes: dict[str, _DevCode] = {}
        self._lock = threading.Lock()

    @property
    def users(self) -> list[str]:
        return sorted(self.issuer.users)

    def authorization_url(self, *, redirect_uri: str, state: str, nonce: str, code_challenge: str) -> str:
        query = {
            "redirect_uri": redirect_uri,
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        return f"/ui/dev/authorize?{urlencode(query)}"

    def grant_code(self, *, user: str, nonce: str, challenge: str, method: str, redirect_uri: str) -> str:
        """A one-time code for ``user`` (the picker's choice), bound to the PKCE challenge."""
        if method != "S256":
            raise InvalidInput("code_challenge_method must be S256")
        if user not in self.issuer.users:
            raise InvalidInput(f"no dev user {user!r}", hint="Pick one of the listed users.")
        code = secrets.token_urlsafe(32)
        now = self._clock.now()
        with self._lock:
            self._codes = {k: v for k, v in self._codes.items() if v.until > now}
            self._codes[code] = _DevCode(user, nonce, challenge, redirect_uri, now + DEV_CODE_TTL)
        return code

    def redeem(self, *, code: str, code_verifier: str, redirect_uri: str, nonce: str) -> Principal:
        with self._lock:
            found = self._codes.pop(code, None)
        if found is None or found.until <= self._clock.now():
            raise AuthenticationFailed("sign-in refused: unknown or used code", hint="Sign in again.")
        if found.redirect_uri != redirect_uri:
            raise AuthenticationFailed("sign-in refused: the code was issued for another redirect URI")
        if not hmac.compare_digest(pkce_challenge(code_verifier), found.challenge):
            raise AuthenticationFailed("sign-in refused: the PKCE verifier does not match the challenge")
        token = self.issuer.issue(found.user, nonce=found.nonce)
        _nonce_matches(self.issuer.verify(token), nonce)
        return self.issuer.authenticate(token)
