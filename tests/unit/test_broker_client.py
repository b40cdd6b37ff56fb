"""The CLI's broker client: a URL that is not a kubejit broker is a clear error, not a JSON traceback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kubejit.cli.client import BrokerClient
from kubejit.errors import BrokerUnreachable, InvalidInput

pytestmark = pytest.mark.unit


class NotABroker(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
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
