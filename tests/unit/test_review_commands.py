"""`kubejit review`, `reviews` and `open`: inputs refused before any network call; `open` prints the
broker's link and hands it to the browser (a real `webbrowser` run of a recording $BROWSER script)."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kubejit.cli import client as client_module
from kubejit.cli import render
from kubejit.cli.app import app
from kubejit.cli.commands import reviews
from kubejit.errors import InvalidInput
from kubejit.local import session

pytestmark = pytest.mark.unit

BROKER = "http://127.0.0.1:1"  # nothing listens: a call that was not refused first would fail loudly
GRANT = {"id": "g1a2b3c4d5e6", "ui_url": "https://kubejit.example.com/ui/requests/g1a2b3c4d5e6"}


class Broker:
    calls: list[str] = []
    answer: dict[str, Any] = GRANT

    def __init__(self, url: str, **_: object) -> None:
        self.url = url

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def call(self, method: str, path: str, **_: object) -> Any:
        self.calls.append(f"{method} {path}")
        return self.answer


@pytest.fixture(autouse=True)
def logged_in(monkeypatch: pytest.MonkeyPatch) -> None:
    session.save(session.Session(broker=BROKER, token="t", user="sam"))
    Broker.calls = []
    Broker.answer = GRANT
    monkeypatch.setattr(client_module, "BrokerClient", Broker)  # open_page imports it when it runs
    monkeypatch.setattr(reviews, "BrokerClient", Broker)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["review", "g1", "--comment", ""], "a review needs a comment"),
        (["review", "g1", "--comment", "   "], "a review needs a comment"),
        (["review", "g1", "--comment", "ok\nrm -rf"], "U+000A"),
        (["review", "g1", "--comment", "ok\x1b[2J"], "U+001B"),
        (["review", "g1", "--comment", "x" * 1001], "at most 1000"),
        (["review", "../admin", "--comment", "ok"], "is not a grant id"),
        (["review", "G1", "--comment", "ok"], "is not a grant id"),
        (["open", "g1/../../x"], "is not a grant id"),
        (["open", "g1?x=1"], "is not a grant id"),
        (["open", ""], "is not a grant id"),
        (["open", "--", "-" + "a" * 80], "is not a grant id"),
        (["open", "g" * 64], "is not a grant id"),
    ],
)
def test_bad_input_is_refused_before_any_call(args: list[str], words: str) -> None:
    result = CliRunner().invoke(app, args)  # `main` prints it as Error/Hint with exit 2 (tests/e2e)
    assert isinstance(result.exception, InvalidInput), result.output
    assert words in result.exception.message and result.exception.hint
    assert result.exception.exit_code == 2
    assert Broker.calls == []


def test_review_needs_a_comment_option() -> None:
    result = CliRunner().invoke(app, ["review", "g1"])
    assert result.exit_code == 2 and "--comment" in result.output
    assert Broker.calls == []


def test_open_print_prints_the_brokers_link_and_opens_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROWSER", "/nonexistent-browser-must-not-run")
    result = CliRunner().invoke(app, ["open", "g1a2b3c4d5e6", "--print"])
    assert result.exit_code == 0, result.output
    assert result.output == GRANT["ui_url"] + "\n"
    assert Broker.calls == ["GET /v1/grants/g1a2b3c4d5e6"]


def test_open_falls_back_to_the_brokers_own_url_for_an_older_broker() -> None:
    Broker.answer = {"id": "g1a2b3c4d5e6"}  # no ui_url field
    result = CliRunner().invoke(app, ["open", "g1a2b3c4d5e6", "--print"])
    assert result.output == f"{BROKER}/ui/requests/g1a2b3c4d5e6\n"


def test_open_hands_the_link_to_the_browser_and_prints_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(
        f"#!{sys.executable}\nimport sys, pathlib\npathlib.Path({str(seen)!r}).write_text(sys.argv[1])\n"
    )
    browser.chmod(browser.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("BROWSER", str(browser))
    result = CliRunner().invoke(app, ["open", "g1a2b3c4d5e6"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == GRANT["ui_url"]
    assert seen.read_text() == GRANT["ui_url"]  # webbrowser waits for a $BROWSER command to finish


def test_the_reviews_table_prints_broker_text_inertly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render.console, "_width", 80)
    hostile = {
        "id": "g1a2b3c4d5e6",
        "requester": "bob\x1b]8;;http://evil\x07",
        "cluster": "prod",
        "namespaces": ["payments"],
        "role": "edit",
        "state": "active",
        "activated_at": "2026-12-06T12:00:00+00:00",
        "reviewer_groups": ["[bold]security[/]"],
        "reason": "INC-1 \x1b[2J",
    }
    Broker.answer = [hostile]  # type: ignore[assignment]
    result = CliRunner().invoke(app, ["reviews"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "[bold]" in result.output and "g1a2b3c4d5e6" in result.output  # markup shown, not applied
    assert "2026-12-06" in result.output and "12:00" in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80


def test_reviews_json_is_the_brokers_list_in_the_envelope() -> None:
    Broker.answer = []  # type: ignore[assignment]
    result = CliRunner().invoke(app, ["reviews", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert '"kind": "ReviewList"' in result.output and '"data": []' in result.output
    assert Broker.calls == ["GET /v1/reviews"]
