"""Text others wrote reaches approvers' terminals literally: the CLI as processes, a real broker.

A reason of ``[/x]`` used to crash every approver's ``kubejit requests`` (Rich read it as markup);
an ESC in a reason was an escape sequence of the requester's choosing. Markup is text now, printed as
it is, and control characters are refused by the API before anything is stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from kubejit.testing.controlplane import ControlPlane
from tests.broker_process import Broker

MARKUP = "[/x] [link=https://evil]x[/link]"


def test_markup_in_a_reason_and_an_end_reason_prints_literally(
    broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]]
) -> None:
    (ns,) = namespaces(control_plane, 1)
    broker.login("alice", "bob")
    request = ("request", "-c", control_plane.name, "-n", ns, "-r", "admin", "--reason", MARKUP)
    grant = broker.json("alice", *request)
    assert grant["state"] == "pending" and grant["reason"] == MARKUP

    waiting = broker.cli("bob", "requests")  # exited 0: no MarkupError
    assert "[/x]" in waiting.stdout and grant["id"] in waiting.stdout
    denied = broker.cli("bob", "deny", grant["id"], "--reason", "[bold]no[/bold] [/x]")
    assert "ended:" in denied.stdout and "[bold]no[/bold] [/x]" in denied.stdout
    shown = broker.cli("alice", "grants", "--state", "denied")
    assert "\x1b" not in shown.stdout + shown.stderr


def test_a_reason_with_control_characters_is_refused_and_the_refusal_is_inert(
    broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]]
) -> None:
    (ns,) = namespaces(control_plane, 1)
    broker.login("alice")
    for reason in ("\x1b]8;;https://evil\x07click\x1b]8;;\x07", "\x1b[2J"):
        args = ("request", "-c", control_plane.name, "-n", ns, "-r", "view", "--reason", reason)
        done = broker.cli("alice", *args, check=False)
        assert done.returncode == 2, done.stderr
        assert "control character U+001B" in done.stderr
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", done.stdout + done.stderr)
    assert broker.json("alice", "grants") == []
