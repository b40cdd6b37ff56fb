"""The HTTP side of `kubejit login`: device grant (RFC 8628), code + PKCE with a loopback redirect
(RFC 8252), and refreshing the ID token. The rules themselves are in ``kubejit.identity.oauth``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx

from kubejit.errors import AuthenticationFailed, InvalidInput
from kubejit.identity import oauth
from kubejit.identity.discovery import ProviderMetadata, discover
from kubejit.identity.tokens import unverified_claims

HTTP_TIMEOUT = 15.0
#: Where the browser may send the authorization code: the loopback listener, never another host.
LOOPBACK_REDIRECT_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class IssuerLogin:
    """What the broker's ``/v1/login-config`` says about one issuer."""

    name: str
    issuer_url: str
    client_id: str
    scopes: list[str]
    redirect_host: str = "127.0.0.1"

    @classmethod
    def from_broker(cls, offered: dict[str, Any]) -> IssuerLogin:
        """Only the fields this CLI knows: a newer broker may offer more."""
        try:
            found = cls(**{f.name: offered[f.name] for f in fields(cls) if f.name in offered})
        except TypeError as exc:  # a required field is missing
            raise InvalidInput(
                f"the broker's login configuration is incomplete ({exc})",
                hint="Upgrade kubejit to the broker's version (`kubejit --version`).",
            ) from exc
        if found.redirect_host not in LOOPBACK_REDIRECT_HOSTS:
            # The authorization code is delivered to this host: only ever this machine (RFC 8252 7.3).
            raise InvalidInput(
                f"the broker asks for the login redirect to go to {found.redirect_host!r}, not this machine",
                hint="Ask the broker's operator to set identity.issuers[].login.redirectHost to 127.0.0.1.",
            )
        return found


@dataclass(frozen=True)
class Tokens:
    id_token: str
    refresh_token: str | None
    #: The ID token's unverified claims (the broker verifies; the CLI only reads exp and nonce).
    claims: dict[str, Any]


def metadata(http: httpx.Client, issuer: IssuerLogin) -> ProviderMetadata:
    return discover(http, issuer.issuer_url)


def _tokens(body: dict[str, Any], previous_refresh: str | None = None) -> Tokens:
    id_token = body.get("id_token")
    if not isinstance(id_token, str):
        raise AuthenticationFailed("the identity provider answered without an ID token")
    refresh = body.get("refresh_token")
    return Tokens(
        id_token=id_token,
        refresh_token=refresh if isinstance(refresh, str) else previous_refresh,
        claims=unverified_claims(id_token),
    )


def _post(http: httpx.Client, url: str | None, data: dict[str, str], *, what: str) -> httpx.Response:
    if not url:
        raise AuthenticationFailed(f"the identity provider does not offer {what}")
    try:
        return http.post(url, data=data, headers={"accept": "application/json"})
    except httpx.HTTPError as exc:
        raise AuthenticationFailed(
            f"cannot reach the identity provider at {url}: {type(exc).__name__}"
        ) from exc


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _seconds(value: Any, default: float) -> float:
    """A positive number of seconds from the IdP's answer; its default when missing or malformed."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return default
    return seconds if 0 < seconds < 86_400 else default


def device_login(
    http: httpx.Client,
    meta: ProviderMetadata,
    issuer: IssuerLogin,
    *,
    show: Callable[[str, str, str | None], None],
    waiting: Callable[[], Any],
    sleep: Callable[[float], None] = time.sleep,
) -> Tokens:
    """RFC 8628: get a user code, show it, poll the token endpoint at the interval the IdP asks for."""
    response = _post(
        http,
        meta.device_authorization_endpoint,
        {"client_id": issuer.client_id, "scope": " ".join(issuer.scopes)},
        what="the device authorization grant",
    )
    start = _json(response)
    # RFC 8628 3.2 requires all three; "verification_url" is what some IdPs (Google) send instead.
    verification = start.get("verification_uri") or start.get("verification_url")
    if response.status_code != 200 or not (
        start.get("device_code") and start.get("user_code") and verification
    ):
        detail = start.get("error_description") or start.get("error") or f"HTTP {response.status_code}"
        if response.status_code == 200:
            detail = "its answer lacks device_code, user_code or verification_uri"
        raise AuthenticationFailed(f"the identity provider refused a device login: {str(detail)[:200]}")
    show(str(verification), str(start["user_code"]), start.get("verification_uri_complete"))
    interval = _seconds(start.get("interval"), oauth.DEFAULT_INTERVAL_SECONDS)
    deadline = time.monotonic() + _seconds(start.get("expires_in"), 600)
    form = {
        "grant_type": oauth.DEVICE_GRANT,
        "device_code": str(start["device_code"]),
        "client_id": issuer.client_id,
    }
    with waiting():
        while time.monotonic() < deadline:
            sleep(interval)
            answer = _post(http, meta.token_endpoint, form, what="a token endpoint")
            body = _json(answer)
            action = oauth.device_poll_outcome(answer.status_code, body)
            if action == "done":
                return _tokens(body)
            if action == "denied":
                raise AuthenticationFailed("the login was denied at the identity provider")
            if action == "expired":
                break
            if action == "error":
                detail = body.get("error_description") or body.get("error") or f"HTTP {answer.status_code}"
                raise AuthenticationFailed(f"device login failed: {str(detail)[:200]}")
            interval = oauth.next_interval(interval, action)
    raise AuthenticationFailed(
        "the device code expired before it was approved", hint="Run `kubejit login` again."
    )


class _Callback(BaseHTTPRequestHandler):
    path_seen: str | None = None

    def do_GET(self) -> None:
        if not self.path.startswith("/callback"):
            self.send_error(404)
            return
        type(self).path_seen = self.path
        body = b"<html><body><h1>kubejit: login complete</h1><p>You can close this tab.</p></body></html>"
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def browser_login(
    http: httpx.Client,
    meta: ProviderMetadata,
    issuer: IssuerLogin,
    *,
    open_url: Callable[[str], None],
    timeout: float = 300.0,
) -> Tokens:
    """Authorization code + PKCE: a one-shot listener on loopback receives the redirect (RFC 8252)."""
    if not meta.authorization_endpoint:
        raise AuthenticationFailed("the identity provider has no authorization endpoint; use --device")
    handler: type[_Callback] = type("Callback", (_Callback,), {"path_seen": None})
    try:
        server = HTTPServer(("127.0.0.1", 0), handler)
    except OSError as exc:
        raise InvalidInput(
            f"cannot listen on loopback for the login redirect: {exc}", hint="Use --device."
        ) from exc
    port = server.server_address[1]
    request = oauth.authorization_request(
        meta.authorization_endpoint,
        client_id=issuer.client_id,
        scopes=issuer.scopes,
        redirect_uri=f"http://{issuer.redirect_host}:{port}/callback",
    )
    server.timeout = 0.5
    deadline = time.monotonic() + timeout
    try:
        threading.Thread(target=open_url, args=(request.url,), daemon=True).start()
        while handler.path_seen is None and time.monotonic() < deadline:
            server.handle_request()
    finally:
        server.server_close()
    if handler.path_seen is None:
        raise AuthenticationFailed(
            "no login arrived within the time limit", hint="Run `kubejit login` again."
        )
    code = oauth.code_from_callback(request, handler.path_seen)
    answer = _post(
        http,
        meta.token_endpoint,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": request.redirect_uri,
            "client_id": issuer.client_id,
            "code_verifier": request.pkce.verifier,
        },
        what="a token endpoint",
    )
    body = _json(answer)
    if answer.status_code != 200:
        detail = body.get("error_description") or body.get("error") or f"HTTP {answer.status_code}"
        raise AuthenticationFailed(f"the identity provider refused the code: {str(detail)[:200]}")
    tokens = _tokens(body)
    oauth.check_nonce(tokens.claims, request.nonce)
    return tokens
