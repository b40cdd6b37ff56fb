"""The CLI's device-grant loop against a scripted token endpoint over real HTTP: it waits the
interval the IdP asks for, adds 5 s on slow_down for good, and stops on denial or expiry.
Sleeping is injected (recorded, not slept)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from kubejit.cli import login_flows
from kubejit.errors import AuthenticationFailed
from kubejit.identity.discovery import ProviderMetadata

pytestmark = pytest.mark.integration

ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMH0.c2ln"


class ScriptedIdP:
    """Answers the device endpoint once, then the token endpoint from a script of (status, body)."""

    def __init__(
        self, script: list[tuple[int, dict[str, Any]]], *, interval: Any = 2, drop: tuple[str, ...] = ()
    ) -> None:
        self.script = list(script)
        self.interval = interval
        #: Fields left out of the device endpoint's answer.
        self.drop = drop
        self.token_requests: list[dict[str, str]] = []
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                form = dict(
                    pair.split("=", 1)
                    for pair in self.rfile.read(int(self.headers["content-length"])).decode().split("&")
                )
                if self.path == "/device":
                    status, body = (
                        200,
                        {
                            "device_code": "dc",
                            "user_code": "ABCD-EFGH",
                            "verification_uri": "http://idp/device",
                            "expires_in": 600,
                            "interval": idp.interval,
                        },
                    )
                    body = {k: v for k, v in body.items() if k not in idp.drop}
                else:
                    idp.token_requests.append(form)
                    status, body = idp.script.pop(0)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.meta = ProviderMetadata(
            issuer=base,
            jwks_uri=base + "/keys",
            token_endpoint=base + "/token",
            device_authorization_endpoint=base + "/device",
        )

    def __enter__(self) -> ScriptedIdP:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


ISSUER = login_flows.IssuerLogin(name="t", issuer_url="http://idp", client_id="cli", scopes=["openid"])


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def _run(idp: ScriptedIdP, http: httpx.Client) -> tuple[login_flows.Tokens, list[float], list[str]]:
    slept: list[float] = []
    shown: list[str] = []
    tokens = login_flows.device_login(
        http,
        idp.meta,
        ISSUER,
        show=lambda uri, code, complete: shown.append(f"{uri} {code}"),
        waiting=nullcontext,
        sleep=slept.append,
    )
    return tokens, slept, shown


def test_pending_slow_down_then_tokens(http: httpx.Client) -> None:
    script = [
        (400, {"error": "authorization_pending"}),
        (400, {"error": "slow_down"}),
        (400, {"error": "authorization_pending"}),
        (200, {"id_token": ID_TOKEN, "refresh_token": "rt"}),
    ]
    with ScriptedIdP(script) as idp:
        tokens, slept, shown = _run(idp, http)
    assert shown == ["http://idp/device ABCD-EFGH"]
    assert slept == [2, 2, 7, 7]  # the IdP's interval, then +5 s from slow_down on, for good
    assert (tokens.id_token, tokens.refresh_token, tokens.claims["sub"]) == (ID_TOKEN, "rt", "alice")
    assert all(
        r["grant_type"].endswith("device_code") and r["device_code"] == "dc" for r in idp.token_requests
    )


@pytest.mark.parametrize(
    "answer,message",
    [
        ((400, {"error": "access_denied"}), "denied"),
        ((400, {"error": "expired_token"}), "expired"),
        ((400, {"error": "invalid_client", "error_description": "unknown client"}), "unknown client"),
        ((200, {"access_token": "only"}), "device login failed"),
    ],
)
def test_the_loop_stops_with_a_reason(
    http: httpx.Client, answer: tuple[int, dict[str, Any]], message: str
) -> None:
    with (
        ScriptedIdP([(400, {"error": "authorization_pending"}), answer]) as idp,
        pytest.raises(AuthenticationFailed, match=message),
    ):
        _run(idp, http)


@pytest.mark.parametrize("interval", ["soon", -3, None, [1]])
def test_a_malformed_interval_means_the_standard_five_seconds(http: httpx.Client, interval: Any) -> None:
    with ScriptedIdP([(200, {"id_token": ID_TOKEN})], interval=interval) as idp:
        _tokens, slept, _shown = _run(idp, http)
    assert slept == [5]


@pytest.mark.parametrize("missing", ["verification_uri", "user_code", "device_code"])
def test_a_device_answer_missing_a_required_field_is_refused(http: httpx.Client, missing: str) -> None:
    with (
        ScriptedIdP([], drop=(missing,)) as idp,
        pytest.raises(AuthenticationFailed, match="lacks device_code, user_code or verification_uri"),
    ):
        _run(idp, http)
    assert idp.token_requests == []
