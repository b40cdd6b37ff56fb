"""The CLI's broker client: a URL that is not a kubejit broker is a clear error, not a JSON traceback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kubejit.cli.client import BrokerClient
from kubejit.errors import BrokerUnreachable, Conflict, InvalidInput
from kubejit.testing.processes import free_port

pytestmark = pytest.mark.unit


class NotABroker(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        """Echoes what arrived: path and query, body, content type and the bearer token."""
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        seen = {
            "path": self.path,
            "body": raw.decode(),
            "type": self.headers.get("content-type"),
            "auth": self.headers.get("authorization"),
        }
        self._send(200, json.dumps(seen).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/v1/problem":
            problem = {"code": "conflict", "detail": "grant g1 already ended", "hint": "see `kubejit grants`"}
            self._send(409, json.dumps(problem).encode(), "application/problem+json")
            return
        if self.path == "/v1/redirect":
            self.send_response(302)
            self.send_header("location", "https://elsewhere.example/")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        body = b'{"ok": true}' if self.path == "/v1/json" else b"<html>a web page</html>"
        self.send_response(200)
        self.send_header("content-type", "application/json" if self.path == "/v1/json" else "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        return


@pytest.fixture
def site() -> Iterator[str]:
    with ThreadingHTTPServer(("127.0.0.1", 0), NotABroker) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


@pytest.mark.parametrize(
    ("path", "says"), [("/v1/page", "HTTP 200, text/html"), ("/v1/redirect", "HTTP 302, no content type")]
)
def test_a_page_or_a_redirect_is_not_a_broker(site: str, path: str, says: str) -> None:
    with BrokerClient(site, token="secret") as client, pytest.raises(BrokerUnreachable) as refused:
        client.call("GET", path)
    assert refused.value.message == f"{site} did not answer like a kubejit broker ({says})"
    assert "KUBEJIT_BROKER" in (refused.value.hint or "")


def test_json_answers_are_returned(site: str) -> None:
    with BrokerClient(site) as client:
        assert client.call("GET", "/v1/json") == {"ok": True}


@pytest.mark.parametrize(
    "url", ["http://kubejit.example.com", "http://10.0.0.5:8080", "ftp://127.0.0.1", "kubejit"]
)
def test_a_token_never_goes_over_plain_http_off_this_machine(url: str) -> None:
    with pytest.raises(InvalidInput, match="must be https://"):
        BrokerClient(url, token="secret")
    BrokerClient(url).__exit__()  # without a token (login offers, dev login) nothing secret is sent


@pytest.mark.parametrize(
    "url", ["https://kubejit.example.com", "http://127.0.0.1:8080", "http://localhost:1"]
)
def test_https_or_loopback_carry_the_token(url: str) -> None:
    with BrokerClient(url, token="secret"):
        pass


def test_a_problem_answer_is_the_error_it_names(site: str) -> None:
    with BrokerClient(site) as client, pytest.raises(Conflict) as refused:
        client.call("GET", "/v1/problem")
    assert refused.value.message == "grant g1 already ended"
    assert refused.value.hint == "see `kubejit grants`"


def test_the_request_carries_json_query_and_token(site: str) -> None:
    with BrokerClient(site, token="secret") as client:
        seen = client.call(
            "POST", "/v1/echo", json={"reason": "on call ✓"}, params={"state": ["a", "b"], "all": False}
        )
    assert seen["path"] == "/v1/echo?state=a&state=b&all=false"
    assert json.loads(seen["body"]) == {"reason": "on call ✓"} and seen["type"] == "application/json"
    assert seen["auth"] == "Bearer secret"


def test_a_post_without_a_body_sends_an_empty_one(site: str) -> None:
    with BrokerClient(site) as client:
        seen = client.call("POST", "/v1/grants/g 1?x/token")
    assert seen["path"] == "/v1/grants/g%201%3Fx/token" and seen["body"] == "" and seen["auth"] is None


def test_no_broker_listening_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with BrokerClient(url) as client, pytest.raises(BrokerUnreachable) as down:
        client.call("GET", "/v1/whoami")
    assert down.value.message.startswith(f"cannot reach the kubejit broker at {url}: ")
