"""One wire contract: the CLI and the exec plugin (both urllib) read the broker's answers alike."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kubejit import errors
from kubejit.cli.client import _error_from
from kubejit.exec import cache, plugin
from kubejit.exec.broker import broker_error
from kubejit.local import session

pytestmark = pytest.mark.unit

CODES = sorted(errors._BY_CODE.items())


def _problem(cls: type[errors.KubejitError]) -> dict[str, Any]:
    return {"status": cls.http_status, "code": cls.code, "detail": "it happened", "hint": "do this"}


@pytest.mark.parametrize(("code", "cls"), CODES, ids=[code for code, _ in CODES])
def test_each_problem_code_is_the_same_error_in_both_clients(
    code: str, cls: type[errors.KubejitError]
) -> None:
    body = _problem(cls)
    cli = _error_from(cls.http_status, json.dumps(body).encode())
    exec_plugin = broker_error(cls.http_status, json.dumps(body).encode(), broker="http://b", grant_id="g1")
    assert type(cli) is cls and type(exec_plugin) is cls
    assert cli.exit_code == exec_plugin.exit_code == cls.exit_code
    assert cli.message == "it happened" and cli.hint == "do this"


def test_store_unavailable_reaches_the_cli_with_its_exit_code() -> None:
    body = _problem(errors.StoreUnavailable)
    error = _error_from(503, json.dumps(body).encode())
    assert isinstance(error, errors.StoreUnavailable) and error.exit_code == 10


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.InvalidInput),
        (401, errors.AuthenticationFailed),
        (403, errors.PermissionDenied),
        (404, errors.NotFound),
        (409, errors.Conflict),
        (503, errors.BrokerUnreachable),
        (500, errors.KubejitError),
        (418, errors.KubejitError),
    ],
)
def test_an_answer_without_a_known_code_goes_by_its_status(
    status: int, cls: type[errors.KubejitError]
) -> None:
    """A proxy in front of the broker, or a framework error such as an unknown route ("http-404")."""
    for body in ({"detail": "x"}, {"detail": "x", "code": f"http-{status}"}):
        cli = _error_from(status, json.dumps(body).encode())
        exec_plugin = broker_error(status, json.dumps(body).encode(), broker="http://b", grant_id="g1")
        assert type(cli) is cls and type(exec_plugin) is cls


def test_a_policy_refusal_keeps_its_rule() -> None:
    body = {**_problem(errors.RequestDenied), "rule": "no-prod"}
    error = _error_from(403, json.dumps(body).encode())
    assert isinstance(error, errors.RequestDenied) and error.rule == "no-prod"


# -- the plugin's cold path: one round trip ---------------------------------------------------------

GRANT = {
    "id": "g1",
    "state": "active",
    "cluster": "dev",
    "namespaces": ["team-a"],
    "role": "view",
    "approvals": [],
    "approvals_required": 1,
}


class Stub:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.grant: dict[str, Any] = dict(GRANT)


@pytest.fixture
def stub() -> Iterator[tuple[Stub, str]]:
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.calls.append(f"GET {self.path}")
            self._send(200, state.grant)

        def do_POST(self) -> None:
            state.calls.append(f"POST {self.path}")
            if state.grant["state"] != "active":
                self._send(409, {"code": "invalid-transition", "detail": "not active", "status": 409})
                return
            end = datetime.now(UTC) + timedelta(hours=1)
            self._send(
                200,
                {
                    "grant_id": "g1",
                    "token": "tok",
                    "expiration_timestamp": end.isoformat(),
                    "token_id": "abc",
                    "state": "active",
                    "expires_at": (end - timedelta(minutes=30)).isoformat(),
                },
            )

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            return

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        session.save(session.Session(broker=url, token="t", user="alice"))
        try:
            yield state, url
        finally:
            server.shutdown()


def test_a_cold_call_for_an_active_grant_is_one_request(
    stub: tuple[Stub, str], capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = stub
    assert plugin.main(["--grant", "g1", "--broker", url]) == 0
    assert state.calls == ["POST /v1/grants/g1/token"]
    assert json.loads(capsys.readouterr().out)["status"]["token"] == "tok"
    fields = cache.read_entry(cache.CachePaths("g1", url).entry)[0]
    assert fields is not None and float(fields["refresh_at"]) < float(fields["not_after"]) + 1
    # The grant ends before the token: kubectl is told to come back at the grant's end.
    assert float(fields["refresh_at"]) == float(fields["not_after"])


def test_a_grant_that_is_not_active_is_explained_from_its_state(
    stub: tuple[Stub, str], capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = stub
    state.grant.update(state="revoked", ended_by="bob", end_reason="done")
    assert plugin.main(["--grant", "g1", "--broker", url]) == 1
    assert state.calls == ["POST /v1/grants/g1/token", "GET /v1/grants/g1"]
    assert "was revoked by bob: done" in capsys.readouterr().err


def test_an_id_tokens_exp_is_read_without_joserfc() -> None:
    import base64

    payload = base64.urlsafe_b64encode(json.dumps({"exp": 1234567890}).encode()).decode().rstrip("=")
    assert session.token_expiry(f"eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln") == 1234567890.0
    for bad in ("", "a.b", "a.!!.c", "a." + base64.urlsafe_b64encode(b"[1]").decode() + ".c"):
        assert session.token_expiry(bad) is None
