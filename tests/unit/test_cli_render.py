"""The CLI prints what others wrote (requester names, reasons, end reasons, problem details) literally.

A reason ``[/x]`` once crashed every approver's ``kubejit requests``, ``[link=...]`` showed a link of
the requester's choosing, and raw ESC reached the terminal. The output is captured as a real terminal
would get it (``force_terminal``), so any escape sequence but kubejit's own colours would show.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from kubejit.cli import render
from kubejit.cli.app import print_error
from kubejit.errors import NotFound, RequestDenied

pytestmark = pytest.mark.unit

HOSTILE = [
    "[/x]",
    "[link=https://evil]x[/link]",
    "\x1b]8;;https://evil\x07click\x1b]8;;\x07",
    "\x1b[2J",
    "\x9b2J",
    "[bold]\\",
]
#: kubejit's own styles: SGR sequences only (ESC [ ... m).
_SGR = re.compile(r"\x1b\[[0-9;]*m")


def grant(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "g1a2b3c4d5e6",
        "state": "revoked",
        "requester": text,
        "cluster": "dev",
        "namespaces": ["team-a"],
        "role": "view",
        "rule": "dev-view",
        "reason": text,
        "approvals": [],
        "approvals_required": 1,
        "approver_groups": [text],
        "expires_at": None,
        "pending_until": "2026-01-01T00:00:00+00:00",
        "end_reason": text,
        "ended_by": text,
        **extra,
    }


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    out = io.StringIO()
    console = render.InertConsole(
        file=out, force_terminal=True, color_system="truecolor", width=300, highlight=False
    )
    monkeypatch.setattr(render, "console", console)
    return out


def assert_inert(printed: str) -> None:
    """No control character left but newlines and kubejit's own colour sequences."""
    rest = _SGR.sub("", printed)
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", rest), repr(rest)


@pytest.mark.parametrize("text", HOSTILE)
def test_the_grants_table_prints_hostile_text_literally(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # wide enough that no column folds
    render.grants([grant(text), grant("plain", state="pending")], render.Output.table, title="Waiting")
    printed = capsys.readouterr().out
    assert_inert(printed)
    assert render.printable(text)[:20] in _SGR.sub("", printed)


@pytest.mark.parametrize("text", HOSTILE)
def test_one_grant_prints_hostile_end_reason_and_ender_literally(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # plain lines, kubejit's own colours: no Rich
    render.grant(grant(text), render.Output.table, headline="Revoked.")
    out = capsys.readouterr().out
    printed = _SGR.sub("", out)
    assert_inert(out)
    shown = render.printable(text)
    assert f"ended:      {shown}" in printed and f"(by {shown}" in printed


def test_markup_in_a_reason_is_not_a_link(capsys: pytest.CaptureFixture[str]) -> None:
    render.grant(grant("[link=https://evil]x[/link]"), render.Output.table, headline="Revoked.")
    out = capsys.readouterr().out
    assert "https://evil" in out and "\x1b]8" not in out


def test_even_text_that_skips_safe_loses_its_control_characters(terminal: io.StringIO) -> None:
    from rich.text import Text

    render.console.print(Text("a\x1b[2Jb\x07"), "raw\x1b]8;;x\x07", markup=False)
    assert_inert(terminal.getvalue())


@pytest.mark.parametrize("text", HOSTILE)
def test_server_problem_details_print_literally(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    print_error(NotFound(f"grant {text} not found", hint=text))
    print_error(RequestDenied(text, rule=text))
    err = capsys.readouterr().err
    assert_inert(err)
    assert render.printable(text) in _SGR.sub("", err)
    assert "\x1b[" in err  # the colours are there: this was a terminal


def test_printable_shows_control_characters() -> None:
    assert render.printable("a\x1b[2J\nb") == "a\\x1b[2J\\x0ab"
    assert render.printable("x\u202ey\u2066") == "x\\u202ey\\u2066"  # bidi controls: shown, not obeyed
    assert render.safe("[/x]") == "\\[/x]"
