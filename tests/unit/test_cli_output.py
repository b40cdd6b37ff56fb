"""What the CLI prints in an 80-column terminal: paths in one piece, reasons wrapped at words."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kubejit import __version__
from kubejit.cli import render
from kubejit.cli.app import app
from kubejit.cli.commands import auth, grants
from kubejit.local import session

pytestmark = pytest.mark.unit

BROKER = "http://127.0.0.1:1"


@pytest.fixture(autouse=True)
def eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render.console, "_width", 80)  # what Rich prints
    monkeypatch.setenv("COLUMNS", "80")  # the plain tables (render.table_lines)


class _Broker:
    answers: dict[tuple[str, str], Any] = {}

    def __init__(self, url: str, **_: object) -> None:
        pass

    def __enter__(self) -> _Broker:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def call(self, method: str, path: str, **_: object) -> Any:
        return self.answers[(method, path)]


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag: str) -> None:
    result = CliRunner().invoke(app, [flag])
    assert result.exit_code == 0 and result.output == f"kubejit {__version__}\n"
    # The console script answers it before click loads.
    done = subprocess.run(
        [sys.executable, "-c", "from kubejit.cli.app import main; main()", flag],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, f"kubejit {__version__}\n")


def test_the_login_message_keeps_the_session_path_in_one_piece(
    monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    deep = isolated_home / ("a-rather-long-folder-name-" * 3) / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(deep))
    _Broker.answers = {("POST", "/v1/dev/login"): {"token": "t", "user": "alice"}}
    monkeypatch.setattr(auth, "BrokerClient", _Broker)
    result = CliRunner().invoke(app, ["login", "--dev-user", "alice", "--broker", BROKER])
    assert result.exit_code == 0, result.output
    assert str(session.session_path()) in result.output.replace("\n", " ").split("(session: ")[1]
    assert f"{session.session_path()})." in result.output


def test_a_grants_table_wraps_reasons_at_words_and_keeps_ids_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    session.save(session.Session(broker=BROKER, token="t", user="alice"))
    soon = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    grant = {
        "id": "g1a2b3c4d5e6",
        "state": "active",
        "requester": "alice@example.com",
        "cluster": "production-eu-west",
        "namespaces": ["payments", "checkout"],
        "role": "edit",
        "expires_at": soon,
        "pending_until": soon,
        "approvals": [],
        "approvals_required": 1,
        "reason": "incident 4711 database failover",
    }
    _Broker.answers = {("GET", "/v1/grants"): [grant]}
    monkeypatch.setattr(grants, "BrokerClient", _Broker)
    result = CliRunner().invoke(app, ["grants"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any("g1a2b3c4d5e6" in line for line in lines)  # the id is typed back: in one piece
    rows = lines[lines.index(next(line for line in lines if "g1a2b3c4d5e6" in line)) :]
    start = next(line for line in lines if "REASON" in line).index("REASON")
    pieces = [line[start:].strip() for line in rows if line[start:].strip()]
    words = ["incident", "4711", "database", "failover"]
    assert pieces, result.output
    for piece in pieces:  # a whole word, or the start of one cut with an ellipsis: never half a word
        assert piece in words or (piece.endswith("…") and any(w.startswith(piece[:-1]) for w in words)), (
            result.output
        )
