"""A command loads its own module only: `kubejit whoami` must not pay for audit, scan or httpx."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kubejit.cli import app as kubejit_app
from kubejit.local import session

pytestmark = pytest.mark.unit

RUN_WHOAMI = """
import json, sys
from kubejit.cli.app import main
sys.argv = ["kubejit", "whoami"]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def test_whoami_imports_only_its_own_command_module(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", RUN_WHOAMI], env=env, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "not logged in" in done.stderr  # it ran the command
    commands = {name for name in loaded if name.startswith("kubejit.cli.commands.")}
    assert commands == {"kubejit.cli.commands.auth"}
    assert not {"httpx", "lightkube", "sqlalchemy", "fastapi"} & {name.split(".")[0] for name in loaded}


class Broker(BaseHTTPRequestHandler):
    """Answers what whoami, grants and requests ask a broker, as the broker would."""

    def do_GET(self) -> None:
        me = {"name": "alice", "issuer": "dev", "admin": False, "groups": ["developers"], "may_request": []}
        body = json.dumps(me if self.path == "/v1/whoami" else []).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        return


@pytest.fixture
def broker_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Broker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


RUN = """
import json, sys
from kubejit.cli.app import main
sys.argv = ["kubejit", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps([code, sorted(sys.modules)]))
"""
#: What a command that only talks to the broker must not import to start: TLS for a loopback broker,
#: the IdP and signing libraries, the broker's own, and Rich (the grant commands print plain lines).
NOT_AT_START = {
    "ssl",
    "email",
    "httpx",
    "joserfc",
    "cryptography",
    "pydantic",
    "yaml",
    "rich",
    "sqlalchemy",
}


@pytest.mark.parametrize("command", ["whoami", "grants", "requests"])
def test_a_broker_command_starts_without_tls_rich_or_the_broker_side(
    isolated_home: Path, broker_url: str, command: str
) -> None:
    session.save(session.Session(broker=broker_url, token="t", user="alice"))
    done = subprocess.run(
        [sys.executable, "-c", RUN, command],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=False,
    )
    *printed, last = done.stdout.splitlines()
    code, loaded = json.loads(last)
    assert code in (0, None), done.stderr
    assert printed and ("alice" in printed[0] or "none." in printed[0]), printed  # it asked the broker
    assert not NOT_AT_START & {name.split(".")[0] for name in loaded}
    assert not {"urllib.request", "http.client"} & set(loaded)


def test_help_lists_every_command_in_order() -> None:
    shown = CliRunner().invoke(kubejit_app.app, ["--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    listing = shown.output.partition("\nCommands:\n")[2]
    listed = [line.split()[0] for line in listing.splitlines() if line.startswith("  ") and line[2] != " "]
    names = [name for name in listed if name in kubejit_app.COMMANDS]
    assert names == list(kubejit_app.COMMANDS)


def test_a_typo_is_still_answered_with_the_commands_it_resembles() -> None:
    answer = CliRunner().invoke(kubejit_app.app, ["whoam"])
    assert answer.exit_code == 2 and "Did you mean 'whoami'" in answer.output


FROZEN_AT_EXIT = """
import atexit, gc, sys
atexit.register(lambda: sys.stderr.write(f"frozen={gc.get_freeze_count()}\\n"))  # runs after main
from kubejit.cli.app import main
sys.argv = ["kubejit", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("argv", [["whoami"], ["grants"], ["whoami", "--bogus"], ["--version"]])
def test_a_command_leaves_its_objects_out_of_the_interpreters_last_collections(
    isolated_home: Path, broker_url: str, argv: list[str]
) -> None:
    """What it printed is all there and its exit code kept, in success and in error."""
    session.save(session.Session(broker=broker_url, token="t", user="alice"))
    done = subprocess.run(
        [sys.executable, "-c", FROZEN_AT_EXIT, *argv], env=dict(os.environ), capture_output=True, text=True
    )
    frozen = int(done.stderr.rpartition("frozen=")[2])
    assert frozen > 1_000, done.stderr  # everything alive at the end (~15,000 objects with click)
    if argv[-1] == "--bogus":
        assert done.returncode == 2 and "No such option '--bogus'" in done.stderr
    else:
        assert done.returncode == 0 and done.stdout.strip(), done.stderr


def test_a_command_runs_with_the_cyclic_collector_on_though_start_up_had_it_off() -> None:
    """`kubejit serve` or `request --wait` may run for hours: their garbage cycles must be collected."""
    import gc

    from kubejit.cli.declare import command, group

    seen: list[bool] = []
    parent = group("test", help="A group for the test.")

    @command(group=parent)
    def probe() -> None:
        seen.append(gc.isenabled())

    gc.disable()
    try:
        answer = CliRunner().invoke(parent, ["probe"])
    finally:
        gc.enable()
    assert answer.exit_code == 0, answer.output
    assert seen == [True]
