"""Child processes of the control plane: loopback ports, spawning with logs to a file, liveness and
termination by pid.

Termination works from a pid alone (not a ``Popen``) because `kubejit dev-cluster stop` runs in another
process than the `start` that spawned etcd and kube-apiserver. A pid can be reused after its process
died, so liveness also checks that the command line still names the cluster's directory (``marker``),
and a zombie counts as dead: in a container, PID 1 may never reap the orphans it adopts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"
_PROC = Path("/proc")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether ``port`` can be bound on loopback; SO_REUSEADDR as servers set it, so TIME_WAIT is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def spawn(args: list[str], *, log_path: Path, detached: bool) -> subprocess.Popen[bytes]:
    """Start ``args`` with stdout+stderr appended to ``log_path``.

    ``detached`` puts the process in its own session so it outlives the CLI that started it and is
    not hit by the terminal's Ctrl-C; attached processes stay in the caller's process group, so an
    interrupted test run takes them down with it.
    """
    with log_path.open("ab") as log:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=detached,
            close_fds=True,
        )


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _proc_state(pid: int) -> str | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may contain spaces; the state follows the last ')'.
    return stat.rpartition(")")[2].split()[0]


def is_alive(pid: int, *, marker: str | None = None) -> bool:
    """Whether ``pid`` runs and, on Linux, is still the process whose command line contains ``marker``."""
    if pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: the pid was reused
    if not _PROC.is_dir():
        return True
    if _proc_state(pid) in (None, "Z", "X"):
        return False
    if marker is None:
        return True
    try:
        cmdline = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    return marker.encode() in cmdline


def terminate(pid: int, *, marker: str | None = None, grace_seconds: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_seconds``; a pid that is gone or reused is left alone."""
    if not is_alive(pid, marker=marker):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and is_alive(pid):
        time.sleep(0.05)


def log_tail(path: Path, *, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file, or an empty string when it cannot be read."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16_384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def pids_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (Linux; empty where /proc is missing).

    Tests use it to prove that a failed or stopped control plane left nothing running.
    """
    if not _PROC.is_dir():
        return []
    needle = text.encode()
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and is_alive(int(entry.name)):
            found.append(int(entry.name))
    return found
