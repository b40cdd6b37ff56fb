"""`kubejit request --wait` end to end: the requester's CLI waits as a process while other people's
CLIs decide; its progress (stderr, a file here: no terminal) names who was notified and what is still
needed, and the wait ends with the outcome: approved (then `--use` as without --wait), denied (exit 3
and the denier's reason), or Ctrl-C (exit 130, the request left pending)."""

from __future__ import annotations

import contextlib
import os
import pty
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kubejit.testing.controlplane import ControlPlane
from tests.broker_process import KUBEJIT, Broker
from tests.polling import eventually

pytestmark = pytest.mark.e2e


@contextmanager
def waiting_request(broker: Broker, progress: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    with progress.open("w") as stderr:
        process = subprocess.Popen(
            [KUBEJIT, "request", *args, "--wait"],
            env=broker.env_for("alice"),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            # As from a terminal: a test run in the background (a non-interactive shell's `&`) would
            # hand SIGINT down ignored, and Python then never turns it into KeyboardInterrupt.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def pending_id(broker: Broker) -> str:
    eventually(lambda: bool(broker.json("bob", "requests")["waiting_for_me"]), what="request visible to bob")
    (pending,) = broker.json("bob", "requests")["waiting_for_me"]
    return str(pending["id"])


def test_the_wait_names_who_was_notified_and_continues_with_use_once_approved(
    broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]], tmp_path: Path
) -> None:
    (ns,) = namespaces(control_plane, 1)
    broker.login("alice", "bob", "carol")
    progress = tmp_path / "progress.txt"
    args = ("-c", control_plane.name, "-n", ns, "-r", "admin", "--reason", "deploy", "--use")
    with waiting_request(broker, progress, *args) as waiting:
        gid = pending_id(broker)
        eventually(
            lambda: f"Waiting for {gid}: notified sre; 2 more approvals needed" in progress.read_text(),
            what="progress names the approver group and the approvals needed",
        )
        broker.cli("bob", "approve", gid)
        eventually(
            lambda: "1 more approval needed (approved so far by bob)" in progress.read_text(),
            what="progress counts bob's approval",
        )
        broker.cli("carol", "approve", gid)
        out, _ = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, progress.read_text()
    shown = progress.read_text()
    assert f"Request {gid} approved by bob, carol after" in shown and "access is active" in shown
    assert "Access granted." in out and gid in out
    context = broker.kubectl("alice", "config", "current-context")
    # --use wrote the grant's context and switched to it, as without --wait
    assert context.returncode == 0 and context.stdout.strip() == f"jit-{control_plane.name}-{ns}"
    assert broker.kubectl("alice", "auth", "can-i", "create", "deployments", "-n", ns).stdout.strip() == "yes"


def test_a_denial_ends_the_wait_with_exit_3_and_the_deniers_reason(
    broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]], tmp_path: Path
) -> None:
    (ns,) = namespaces(control_plane, 1)
    broker.login("alice", "bob")
    progress = tmp_path / "progress.txt"
    args = ("-c", control_plane.name, "-n", ns, "-r", "admin", "--reason", "deploy", "-o", "json")
    with waiting_request(broker, progress, *args) as waiting:
        gid = pending_id(broker)
        broker.cli("bob", "deny", gid, "--reason", "use the Thursday maintenance window")
        out, _ = waiting.communicate(timeout=60)
    assert waiting.returncode == 3
    assert f"Request {gid} denied by bob after" in progress.read_text()
    assert "use the Thursday maintenance window" in progress.read_text()
    assert '"state": "denied"' in out  # -o json keeps stdout for the answer


def test_ctrl_c_stops_waiting_and_leaves_the_request_pending(
    broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]], tmp_path: Path
) -> None:
    (ns,) = namespaces(control_plane, 1)
    broker.login("alice", "bob")
    progress = tmp_path / "progress.txt"
    args = ("-c", control_plane.name, "-n", ns, "-r", "admin", "--reason", "deploy")
    with waiting_request(broker, progress, *args) as waiting:
        gid = pending_id(broker)
        eventually(lambda: f"Waiting for {gid}" in progress.read_text(), what="the CLI is waiting")
        waiting.send_signal(signal.SIGINT)
        waiting.communicate(timeout=60)
    assert waiting.returncode == 130
    shown = progress.read_text()
    assert f"Request {gid} is still pending; check with `kubejit requests` or `kubejit open {gid}`." in shown
    assert "Traceback" not in shown
    assert [g["id"] for g in broker.json("alice", "grants", "--state", "pending")] == [gid]
    assert broker.json("bob", "approve", gid)["state"] == "pending"  # still decidable: 1 of 2


def test_on_a_terminal_the_wait_is_a_status_line_that_names_the_approvers(
    broker: Broker, control_plane: ControlPlane, namespaces: Callable[..., list[str]]
) -> None:
    (ns,) = namespaces(control_plane, 1)
    broker.login("alice", "bob", "carol")
    controller, terminal = pty.openpty()
    os.set_blocking(controller, False)
    seen = bytearray()

    def shown() -> str:
        with contextlib.suppress(BlockingIOError, OSError):
            seen.extend(os.read(controller, 65536))
        return seen.decode(errors="replace")

    args = ("-c", control_plane.name, "-n", ns, "-r", "admin", "--reason", "deploy", "-o", "json")
    waiting = subprocess.Popen(
        [KUBEJIT, "request", *args, "--wait"],
        env={**broker.env_for("alice"), "TERM": "xterm-256color"},
        stdout=subprocess.PIPE,
        stderr=terminal,
        text=True,
    )
    os.close(terminal)
    try:
        gid = pending_id(broker)
        eventually(
            lambda: "notified sre; 2 more approvals needed" in shown(), what="a status line on the tty"
        )
        broker.cli("bob", "approve", gid)
        broker.cli("carol", "approve", gid)
        out, _ = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
        waiting.wait(timeout=30)
    eventually(lambda: "access is active" in shown(), what="the outcome replaces the status line")
    os.close(controller)
    assert waiting.returncode == 0 and '"state": "active"' in out
    assert "\x1b[?25l" in shown()  # Rich hid the cursor for its spinner: a live status, not plain lines
