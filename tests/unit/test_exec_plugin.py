"""`kubejit token`: arguments, the cache entry format, expiry margins, messages, back-off, imports."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from kubejit.errors import (
    AuthenticationFailed,
    BrokerUnreachable,
    Conflict,
    InvalidInput,
    KubejitError,
    Locked,
    NotFound,
    PermissionDenied,
    RateLimited,
    RequestDenied,
)
from kubejit.exec import cache, plugin, refresh
from kubejit.exec.broker import BrokerApi, broker_error
from kubejit.local import private_files, session

if TYPE_CHECKING:  # types only (kubejit.local.wire builds them for the type checker)
    from kubejit.local.wire import GrantWire, TokenWire

pytestmark = pytest.mark.unit

BROKER = "http://127.0.0.1:8080"
#: Byte for byte what kubectl v1.37 sets for `interactiveMode: Never` (newline included).
KUBECTL_EXEC_INFO = (
    '{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}\n'
)
GRANT: GrantWire = {
    "id": "g1a2b3",
    "state": "active",
    "cluster": "dev",
    "namespaces": ["team-a", "team-b"],
    "role": "view",
    "approvals": [],
    "approvals_required": 2,
    "ended_by": None,
    "end_reason": "",
}


def changed(**fields: Any) -> GrantWire:
    """GRANT with some fields changed (a TypedDict cannot be spread with arbitrary keys)."""
    return cast("GrantWire", {**GRANT, **fields})


def entry(**overrides: str) -> dict[str, str]:
    now = time.time()
    fields = {
        "kind": "token",
        "refresh_at": repr(now + 600),
        "not_after": repr(now + 700),
        "minted_at": repr(now),
        "session": "1-2-3",
        "user": "alice",
        "serial": "abc",
        "body": '{"token":"t","expirationTimestamp":"2030-01-01T00:00:00Z"}',
    }
    return {**fields, **overrides}


@pytest.mark.parametrize(
    ("argv", "grant", "broker"),
    [
        (["--grant", "g1", "--broker", "http://b:1/"], "g1", "http://b:1"),
        (["--grant=g1", "--broker=https://b"], "g1", "https://b"),
        (["--grant", "g1"], "g1", None),
    ],
)
def test_arguments(argv: list[str], grant: str, broker: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEJIT_BROKER", raising=False)
    args = plugin.parse_args(argv)
    assert args is not None and (args.grant, args.broker) == (grant, broker)
    assert plugin.parse_args(["--help"]) is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "--grant is required"),
        (["--grant"], "--grant needs a value"),
        (["--grant", "G1!"], "is not a grant id"),
        (["--grant", "-x"], "is not a grant id"),
        (["--grant", "g1", "--broker", "ftp://x"], "not an http"),
        (["--grant", "g1", "--token", "x"], "unknown argument"),
    ],
)
def test_bad_arguments_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        plugin.parse_args(argv)


def test_exec_info_known_fast_unknown_validated() -> None:
    known = '{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}'
    assert plugin.exec_api_version(known) == ("client.authentication.k8s.io/v1", True)
    assert plugin.exec_api_version(known + "\n") == (
        "client.authentication.k8s.io/v1",
        True,
    )  # as kubectl sends
    assert plugin.exec_api_version(None) == ("client.authentication.k8s.io/v1", False)
    spaced = json.dumps({"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1beta1"})
    assert plugin.exec_api_version(spaced) == ("client.authentication.k8s.io/v1beta1", True)
    for bad in ("{", '{"kind":"Pod"}', '{"kind":"ExecCredential","apiVersion":"v9"}'):
        with pytest.raises(InvalidInput, match="KUBERNETES_EXEC_INFO"):
            plugin.exec_api_version(bad)


def test_entry_round_trip_and_damage_is_detected() -> None:
    fields = entry()
    text = cache.render_entry(fields)
    assert cache.parse_entry(text) == fields
    assert cache.parse_entry(text.replace("kubejit-token-cache 1", "kubejit-token-cache 2")) is None
    assert cache.parse_entry(text.replace("refresh_at ", "refresh_at x")) is None
    assert cache.parse_entry(text.split("\n\n")[0]) is None
    assert cache.parse_entry("kubejit-token-cache 1\ngarbage") is None
    tomb = {"kind": "ended", "state": "revoked", "body": "kubejit: revoked\n"}
    assert cache.parse_entry(cache.render_entry(tomb)) == tomb


def test_read_entry_refuses_files_others_could_read(tmp_path: Path) -> None:
    path = tmp_path / "e.cred"
    assert cache.read_entry(str(path)) == (None, None)
    private_files.write_private(str(path), cache.render_entry(entry()))
    assert path.stat().st_mode & 0o777 == 0o600
    fields, problem = cache.read_entry(str(path))
    assert problem is None and fields is not None and fields["serial"] == "abc"
    path.chmod(0o644)
    assert cache.read_entry(str(path)) == (None, "is not a private file of yours (mode 0600)")
    path.chmod(0o600)
    path.write_bytes(b"\xff\xfe")
    assert cache.read_entry(str(path)) == (None, "is corrupt")


def test_served_once_per_kubectl_process_then_treated_as_rejected(tmp_path: Path) -> None:
    paths = cache.CachePaths("g1", BROKER, root=str(tmp_path))
    assert cache.mark_served(paths, "s1") is True
    assert cache.mark_served(paths, "s1") is False  # the same caller asks again: a 401
    assert cache.mark_served(paths, "s2") is True
    cache.forget_markers(paths, keep="s2")
    assert cache.mark_served(paths, "s1") is True


def test_markers_of_exited_kubectl_processes_are_dropped(tmp_path: Path) -> None:
    paths = cache.CachePaths("g1", BROKER, root=str(tmp_path))
    assert cache.mark_served(paths, "s1")
    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone = Path(paths.seen) / f"s1.{exited.stdout.strip()}-12345"
    gone.touch()
    reused = Path(paths.seen) / f"s1.{os.getpid()}-0"  # our pid, but another start time: a reused pid
    reused.touch()
    cache.forget_gone_callers(paths)
    assert sorted(os.listdir(paths.seen)) == [f"s1.{cache.caller_id()}"]


def test_refresh_ahead_of_expiry_by_the_skew_margin() -> None:
    now = 1000.0
    assert refresh.refresh_time(now=now, token_end=now + 3600, grant_end=now + 7200) == now + 3600 - 60
    assert refresh.refresh_time(now=now, token_end=now + 100, grant_end=now + 7200) == now + 90
    # A token that outlives the grant is kept to the grant's end: a new one would end there too.
    assert refresh.refresh_time(now=now, token_end=now + 3600, grant_end=now + 1800) == now + 1800


def test_token_entry_tells_kubectl_when_to_ask_again() -> None:
    token: TokenWire = {
        "token": "secret",
        "expiration_timestamp": "2030-01-01T01:00:00+00:00",
        "token_id": "ab-12",
    }
    grant = changed(expires_at="2030-01-01T02:00:00+00:00")
    now = refresh.parse_time("2030-01-01T00:00:00+00:00")
    fields = refresh.token_entry(grant, token, now=now, user="alice", stamp="s")
    assert json.loads(fields["body"]) == {"token": "secret", "expirationTimestamp": "2030-01-01T00:59:00Z"}
    assert fields["serial"] == "ab12" and float(fields["not_after"]) == now + 3600
    assert cache.parse_entry(cache.render_entry(fields)) == fields


@pytest.mark.parametrize(
    ("state", "extra", "says", "next_step"),
    [
        ("pending", {}, "is waiting for approval (0/2 approvals)", "kubejit approve g1a2b3"),
        ("approved", {}, "is approved and being activated", "again in a few seconds"),
        ("revoked", {"ended_by": "bob", "end_reason": "done"}, "was revoked by bob: done", "kubejit request"),
        ("expired", {}, "expired", "kubejit request"),
        ("denied", {"ended_by": "bob"}, "was denied by bob", "kubejit request"),
        ("failed", {"end_reason": "no cluster"}, "could not be activated: no cluster", "kubejit request"),
        ("weird", {}, "unknown state 'weird'", "Upgrade kubejit"),
    ],
)
def test_messages_say_what_to_do_next(state: str, extra: dict[str, str], says: str, next_step: str) -> None:
    message = refresh.state_message(changed(state=state, **extra), broker=BROKER)
    assert message is not None
    text, hint = message
    assert text.startswith("grant g1a2b3 (view in team-a, team-b on cluster dev) ") and says in text
    assert next_step in hint
    assert refresh.state_message(GRANT, broker=BROKER) is None


def test_the_request_command_asks_for_the_same_access_again() -> None:
    assert refresh.request_command(GRANT) == (
        "kubejit request --cluster dev --namespace team-a --namespace team-b --role view"
    )


@pytest.mark.parametrize(
    ("status", "kind", "says"),
    [
        (401, AuthenticationFailed, "no longer accepts your login"),
        (404, NotFound, "is not yours or does not exist"),
        (403, PermissionDenied, "is not yours or does not exist"),
        (409, Conflict, "not active"),
        (503, BrokerUnreachable, "is unavailable"),
        (429, RateLimited, "is refusing requests for now"),
        (500, KubejitError, "failed"),
    ],
)
def test_broker_answers_become_kubejit_errors(status: int, kind: type[KubejitError], says: str) -> None:
    error = broker_error(status, b'{"detail": "not active"}', broker=BROKER, grant_id="g1")
    assert type(error) is kind and says in error.message
    assert broker_error(502, b"<html>", broker=BROKER, grant_id="g1").message.endswith("(HTTP 502)")


@pytest.mark.parametrize(
    ("code", "kind", "hint"),
    [("locked", Locked, "kubejit unlock l1"), ("denied-by-policy", RequestDenied, "Request access again")],
)
def test_a_locked_principal_or_a_grant_policy_no_longer_allows_is_said_so(
    code: str, kind: type[KubejitError], hint: str
) -> None:
    body = {"code": code, "detail": "alice is locked by lock l1: left", "hint": hint}
    error = broker_error(403, json.dumps(body).encode(), broker=BROKER, grant_id="g1")
    assert type(error) is kind and "refused a token for grant g1: alice is locked" in error.message
    assert error.hint == hint


def test_back_off_fails_fast_and_grows_then_clears(tmp_path: Path) -> None:
    paths = cache.CachePaths("g1", BROKER, root=str(tmp_path))
    refresh.wait_for_backoff(paths, BROKER, now=100.0)  # nothing noted: go ahead
    refresh.note_broker_down(paths, "connection refused", now=100.0)
    with pytest.raises(BrokerUnreachable, match=r"connection refused\); next try after"):
        refresh.wait_for_backoff(paths, BROKER, now=100.5)
    refresh.wait_for_backoff(paths, BROKER, now=101.0)
    for _ in range(10):
        refresh.note_broker_down(paths, "refused", now=200.0)
    with pytest.raises(BrokerUnreachable):
        refresh.wait_for_backoff(paths, BROKER, now=229.0)
    refresh.wait_for_backoff(paths, BROKER, now=230.0)  # capped at 30 s
    refresh.clear_backoff(paths)
    refresh.wait_for_backoff(paths, BROKER, now=200.0)


def test_forget_tokens_drops_entries_markers_and_back_off(tmp_path: Path) -> None:
    tmp_path = tmp_path / "tokens"
    tmp_path.mkdir()
    paths = cache.CachePaths("g1", BROKER, root=str(tmp_path))
    private_files.write_private(paths.entry, cache.render_entry(entry()))
    cache.mark_served(paths, "abc")
    refresh.note_broker_down(paths, "down", now=1.0)
    Path(paths.lock).touch()
    assert cache.forget_tokens(str(tmp_path)) == 1
    assert os.listdir(tmp_path) == [os.path.basename(paths.lock)]
    assert cache.forget_tokens(str(tmp_path / "none")) == 0


def test_the_cached_path_loads_no_framework(tmp_path: Path) -> None:
    """A warm `kubejit token` imports the stdlib and kubejit's two tiny modules, nothing else."""
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "KUBERNETES_EXEC_INFO": KUBECTL_EXEC_INFO,
    }
    session = tmp_path / "cfg" / "kubejit" / "session.json"
    session.parent.mkdir(parents=True)
    session.write_text('{"broker": "http://127.0.0.1:1", "token": "x", "user": "alice"}')
    probe = (
        "import os, sys\n"
        "from kubejit.exec import plugin\n"
        "from kubejit.exec import cache as p\n"
        "paths = p.CachePaths('g1', 'http://127.0.0.1:1')\n"
        "os.makedirs(paths.root, mode=0o700)\n"
        f"fields = {entry()!r}\n"
        "fields['session'] = p.session_stamp()\n"
        "with open(os.open(paths.entry, os.O_WRONLY | os.O_CREAT, 0o600), 'w') as out:\n"
        "    out.write(p.render_entry(fields))\n"
        "before = set(sys.modules)\n"
        "sys.argv = ['kubejit', 'token', '--grant', 'g1', '--broker', 'http://127.0.0.1:1']\n"
        "from kubejit.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "sys.stderr.write(repr((code, sorted(set(sys.modules) - before))))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False)
    code, loaded = eval(done.stderr)  # the probe's own repr
    assert code == 0, done.stderr
    assert json.loads(done.stdout)["status"]["token"] == "t"
    allowed = {"kubejit.cli", "kubejit.cli.app", "typing", "collections.abc", "gc"}  # gc: built in
    assert set(loaded) <= allowed, loaded
    heavy = {"click", "rich", "httpx", "pydantic", "lightkube", "yaml", "json", "urllib.request"}
    assert not heavy & set(loaded)


def _jwt(exp: float) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part({'exp': int(exp), 'sub': 'alice'})}.c2ln"


def test_an_oidc_login_is_renewed_only_when_the_broker_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEJIT_KEYRING", "0")
    dev = session.Session(broker=BROKER, token="dev-token", user="alice")
    assert refresh.fresh_login(dev) is dev
    oidc = session.Session(
        broker=BROKER,
        token=_jwt(time.time() + 3600),
        user="alice",
        issuer_url="https://idp.example",
        client_id="kubejit",
        token_endpoint="https://idp.example/token",
    )
    session.save(oidc)
    assert refresh.fresh_login(oidc) == oidc  # still valid: used as it is
    session.save(dataclasses.replace(oidc, token=_jwt(time.time() - 10)))
    with pytest.raises(AuthenticationFailed, match="your login expired"):  # no refresh token kept
        refresh.fresh_login(oidc)


@pytest.mark.parametrize("text", ["[]", "not json", '{"broker": "http://b"}'])
def test_a_corrupt_session_file_is_a_message_not_a_traceback(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    session.session_path().parent.mkdir(parents=True, exist_ok=True)
    session.session_path().write_text(text)
    assert plugin.main(["--grant", "g1"]) == 1
    err = capsys.readouterr().err
    assert "the session file" in err and "is unreadable or corrupt" in err and "kubejit logout" in err


def test_a_cache_that_cannot_be_written_is_a_message_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    session.save(session.Session(broker=BROKER, token="t", user="alice"))
    paths = cache.CachePaths("g1", BROKER)
    os.makedirs(paths.lock)  # where the lock file should be, something that is not a file
    assert plugin.main(["--grant", "g1", "--broker", BROKER]) == 1
    err = capsys.readouterr().err
    assert (
        f"kubejit: cannot use the token cache in {cache.cache_root()}: Is a directory ({paths.lock})" in err
    )
    assert "XDG_CACHE_HOME" in err


def test_a_redirect_is_not_followed_with_the_token() -> None:
    """urllib would repeat the Authorization header to the redirect's target; the plugin must not go there."""
    seen: list[str | None] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("authorization"))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_: Any) -> None:
            return

    with ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere) as other:
        target = f"http://127.0.0.1:{other.server_address[1]}/steal"

        class Redirecting(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(302)
                self.send_header("location", target)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        with ThreadingHTTPServer(("127.0.0.1", 0), Redirecting) as broker:
            for server in (other, broker):
                threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                api = BrokerApi(f"http://127.0.0.1:{broker.server_address[1]}", "secret-token")
                with pytest.raises(KubejitError, match=r"answered with a redirect \(HTTP 302\)"):
                    api.get_grant("g1")
            finally:
                broker.shutdown()
                other.shutdown()
    assert seen == []


def test_write_private_is_0600_even_over_looser_leftovers(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    path.write_text("old")
    path.chmod(0o644)
    leftover = tmp_path / f"session.json.{os.getpid()}.tmp"  # a crashed earlier write of this process id
    leftover.write_text("half")
    leftover.chmod(0o666)
    private_files.write_private(str(path), "new")
    assert path.read_text() == "new" and path.stat().st_mode & 0o777 == 0o600
    assert not leftover.exists()


HOSTILE_END = "\x1b]8;;https://evil\x07click\x1b]8;;\x07 \x1b[2J\x9b2J\rdone\nkubejit: forged line"


def test_an_ended_grants_message_reaches_kubectl_without_escape_sequences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The end reason and ender are the broker's text; kubectl copies the plugin's stderr to the terminal."""
    ended = changed(state="revoked", ended_by="bob\x1b[31m", end_reason=HOSTILE_END)
    message = refresh.state_message(ended, broker=BROKER)
    assert message is not None
    paths = cache.CachePaths(GRANT["id"], BROKER, root=str(tmp_path))
    assert refresh._grant_not_usable(paths, ended, message) == 1
    live = capsys.readouterr().err
    fields, _ = cache.read_entry(paths.entry)
    assert fields is not None and fields["kind"] == "ended"
    for text in (live, fields["body"]):
        assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0 for c in text), repr(text)
        assert text.count("\n") == 2  # the message and its hint: no line forged by the reason
        assert "click" in text and "done" in text


def test_a_tombstone_written_by_an_older_version_is_cleaned_when_served(
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = cache.CachePaths("g1", BROKER)
    private_files.private_dir(paths.root)
    tomb = {"kind": "ended", "state": "revoked", "body": "kubejit: revoked: \x1b[2Jgone\x07\n"}
    private_files.write_private(paths.entry, cache.render_entry(tomb))
    assert plugin.main(["--grant", "g1", "--broker", BROKER]) == 1
    assert capsys.readouterr().err == "kubejit: revoked: ?[2Jgone?\n"
