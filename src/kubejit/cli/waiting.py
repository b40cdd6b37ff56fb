"""`kubejit request --wait`: poll the broker until a request is decided, saying who was asked.

A requester who waits should see that somebody was told, and who: the approver groups the decision
names, how many approvals are still needed, and for how long they have waited. On a terminal that is
one Rich status line with a spinner; otherwise (CI logs, pipes) plain lines, written when something
changes and every half minute, so a log shows progress without a line per poll. Everything goes to
stderr, so `-o json` keeps stdout for the answer.

The broker is polled with a backoff (``poll_intervals``): quick at first, when an approver acting
from a notification is likely, then every few seconds. Sleeping and the clock are injected, so the
tests run the loop without waiting.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TextIO

from kubejit.cli import render

#: States in which a request is still on its way to active (approved: its objects are being created).
UNDECIDED = ("pending", "approved")
#: Polling starts at this many seconds and grows by ``BACKOFF`` up to ``MAX_INTERVAL``.
FIRST_INTERVAL = 0.5
BACKOFF = 1.5
MAX_INTERVAL = 5.0
#: Plain-line progress repeats an unchanged line this often (seconds).
HEARTBEAT = 30.0


class Broker(Protocol):
    def call(self, method: str, path: str) -> Any: ...


class Progress(Protocol):
    def show(self, key: str, text: str, now: float) -> None: ...

    def done(self, text: str) -> None: ...


def poll_intervals(
    first: float = FIRST_INTERVAL, factor: float = BACKOFF, cap: float = MAX_INTERVAL
) -> Iterator[float]:
    """0.5, 0.75, 1.125, ... seconds, never more than ``cap``."""
    interval = first
    while True:
        yield interval
        interval = min(interval * factor, cap)


def elapsed(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"


def still_needed(grant: dict[str, Any]) -> int:
    return max(int(grant["approvals_required"]) - len(grant["approvals"]), 0)


def progress_key(grant: dict[str, Any]) -> str:
    """What a change of means a new line: the state and how many approvals are in."""
    return f"{grant['state']}:{len(grant['approvals'])}"


def progress_text(grant: dict[str, Any], waited: float) -> str:
    """One line of progress: who was notified, what is still needed, how long it has been."""
    gid = render.printable(grant["id"])
    if grant["state"] == "approved":
        return f"Request {gid} approved; activating it on {render.printable(grant['cluster'])} ({elapsed(waited)})"
    groups = ", ".join(render.printable(g) for g in grant["approver_groups"]) or "no approver group"
    needed = still_needed(grant)
    approvals = "approval" if needed == 1 else "approvals"
    got = [render.printable(a["approver"]) for a in grant["approvals"]]
    so_far = f" (approved so far by {', '.join(got)})" if got else ""
    return (
        f"Waiting for {gid}: notified {groups}; {needed} more {approvals} needed{so_far}; "
        f"waiting {elapsed(waited)} (Ctrl-C stops waiting)"
    )


def outcome_text(grant: dict[str, Any], waited: float) -> str:
    """The last line: how the wait ended, with the denier's reason for a denial."""
    gid, after = render.printable(grant["id"]), elapsed(waited)
    state = grant["state"]
    if state == "active":
        by = ", ".join(render.printable(a["approver"]) for a in grant["approvals"]) or "policy"
        return f"Request {gid} approved by {by} after {after}; access is active."
    if state == "denied":
        who = render.printable(grant.get("ended_by") or "an approver")
        return (
            f"Request {gid} denied by {who} after {after}: {render.printable(grant.get('end_reason') or '-')}"
        )
    if state in UNDECIDED:
        return still_pending_text(grant)
    why = render.printable(grant.get("end_reason") or state)
    return f"Request {gid} is {render.printable(state)} after {after}: {why}"


def still_pending_text(grant: dict[str, Any]) -> str:
    gid = render.printable(grant["id"])
    return (
        f"Request {gid} is still {render.printable(grant['state'])}; "
        f"check with `kubejit requests` or `kubejit open {gid}`."
    )


class LineProgress:
    """Plain lines for logs and pipes: a line when the key changes, else one per ``HEARTBEAT``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._last_key: str | None = None
        self._last_at = 0.0

    def show(self, key: str, text: str, now: float) -> None:
        if key == self._last_key and now - self._last_at < HEARTBEAT:
            return
        self._last_key, self._last_at = key, now
        self.write(text)

    def done(self, text: str) -> None:
        self.write(text)

    def write(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class StatusProgress:
    """A Rich status line with a spinner on a terminal (stderr), replaced by the outcome at the end."""

    def __init__(self) -> None:
        console = render.InertConsole(stderr=True, highlight=False)
        self.console = console
        self.status = console.status("Waiting for a decision...")
        self.status.start()

    def show(self, key: str, text: str, now: float) -> None:
        self.status.update(render.safe(text))

    def done(self, text: str) -> None:
        self.stop()
        self.console.print(render.safe(text))

    def stop(self) -> None:
        self.status.stop()


def progress_for(stream: TextIO | None = None) -> LineProgress | StatusProgress:
    stream = stream or sys.stderr
    return StatusProgress() if stream.isatty() else LineProgress(stream)


def wait_for_decision(
    client: Broker,
    grant: dict[str, Any],
    *,
    timeout: float,
    progress: Progress,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll until the request leaves pending/approved or ``timeout`` seconds pass; the last answer.

    Ctrl-C (KeyboardInterrupt) is the caller's to report; the request itself is never touched.
    """
    start = clock()
    intervals = poll_intervals()
    try:
        while grant["state"] in UNDECIDED:
            now = clock()
            progress.show(progress_key(grant), progress_text(grant, now - start), now)
            if now - start >= timeout:
                break
            sleep(min(next(intervals), max(timeout - (now - start), 0.0)))
            grant = client.call("GET", f"/v1/grants/{grant['id']}")
    finally:
        if isinstance(progress, StatusProgress):
            progress.stop()
    progress.done(outcome_text(grant, clock() - start))
    return grant
