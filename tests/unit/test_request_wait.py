"""`kubejit request --wait`: the polling loop and what it says, with the clock and sleep injected."""

from __future__ import annotations

import io
from typing import Any

import pytest

from kubejit.cli import waiting

pytestmark = pytest.mark.unit


def grant(state: str = "pending", approvers: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    return {
        "id": "g1",
        "state": state,
        "cluster": "prod",
        "approvals_required": 2,
        "approver_groups": ["db-admins", "sre"],
        "approvals": [{"approver": a} for a in approvers],
        "ended_by": None,
        "end_reason": "",
        **extra,
    }


class Broker:
    """Answers each GET with the next scripted grant (kubejit's own API, not Kubernetes')."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def call(self, method: str, path: str) -> Any:
        self.calls.append(f"{method} {path}")
        return self.answers.pop(0)


class Time:
    """A monotonic clock that only moves when the loop sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def run(broker: Broker, start: dict[str, Any], *, timeout: float = 3600) -> tuple[dict[str, Any], str, Time]:
    out, time = io.StringIO(), Time()
    done = waiting.wait_for_decision(
        broker, start, timeout=timeout, progress=waiting.LineProgress(out), sleep=time.sleep, clock=time.clock
    )
    return done, out.getvalue(), time


def test_the_poll_interval_backs_off_to_a_cap() -> None:
    intervals = waiting.poll_intervals()
    got = [round(next(intervals), 3) for _ in range(9)]
    assert got == [0.5, 0.75, 1.125, 1.688, 2.531, 3.797, 5.0, 5.0, 5.0]


def test_waiting_names_the_notified_groups_and_what_is_still_needed_until_approved() -> None:
    broker = Broker(
        grant(),
        grant(approvers=("bob",)),
        grant("approved", approvers=("bob", "carol")),
        grant("active", approvers=("bob", "carol")),
    )
    done, out, time = run(broker, grant())
    assert done["state"] == "active"
    assert broker.calls == ["GET /v1/grants/g1"] * 4
    assert time.slept == [0.5, 0.75, 1.125, 1.6875]
    lines = out.splitlines()
    # A line when something changes, not per poll: the unchanged second answer printed nothing.
    assert lines == [
        "Waiting for g1: notified db-admins, sre; 2 more approvals needed; waiting 0s (Ctrl-C stops waiting)",
        "Waiting for g1: notified db-admins, sre; 1 more approval needed (approved so far by bob); "
        "waiting 1s (Ctrl-C stops waiting)",
        "Request g1 approved; activating it on prod (2s)",
        "Request g1 approved by bob, carol after 4s; access is active.",
    ]


def test_an_unchanged_line_repeats_every_half_minute_with_the_time_waited() -> None:
    broker = Broker(*[grant()] * 12, grant("active", approvers=("bob", "carol")))
    _, out, _ = run(broker, grant())
    waited = [line.split("waiting ")[1].split(" ")[0] for line in out.splitlines() if "waiting" in line]
    assert waited == ["0s", "30s"]


def test_a_denial_ends_the_wait_with_the_deniers_reason() -> None:
    denied = grant("denied", ended_by="bob", end_reason="use the maintenance window")
    done, out, _ = run(Broker(denied), grant())
    assert done["state"] == "denied"
    assert out.splitlines()[-1] == "Request g1 denied by bob after 0s: use the maintenance window"


def test_a_request_expiring_while_waiting_says_so() -> None:
    expired = grant("expired", end_reason="no decision before the request timed out")
    _, out, _ = run(Broker(expired), grant())
    assert out.splitlines()[-1] == "Request g1 is expired after 0s: no decision before the request timed out"


def test_the_timeout_stops_polling_and_says_how_to_follow_up() -> None:
    done, out, time = run(Broker(*[grant()] * 10), grant(), timeout=2)
    assert done["state"] == "pending"
    assert sum(time.slept) == pytest.approx(2) and time.slept[-1] == pytest.approx(2 - 0.5 - 0.75)
    assert out.splitlines()[-1] == (
        "Request g1 is still pending; check with `kubejit requests` or `kubejit open g1`."
    )


def test_ctrl_c_propagates_for_the_command_to_report_and_touches_nothing() -> None:
    class Interrupted(Broker):
        def call(self, method: str, path: str) -> Any:
            self.calls.append(f"{method} {path}")
            raise KeyboardInterrupt

    broker = Interrupted()
    with pytest.raises(KeyboardInterrupt):
        run(broker, grant())
    assert broker.calls == ["GET /v1/grants/g1"]  # reads only: the request is left as it is


def test_text_from_the_broker_cannot_drive_the_terminal() -> None:
    hostile = grant(approver_groups=["sre\x1b[2J"], id="g1")
    text = waiting.progress_text(hostile, 5)
    assert "\x1b" not in text and "sre\\x1b[2J" in text


def test_a_pipe_gets_lines_and_a_terminal_a_spinner() -> None:
    assert isinstance(waiting.progress_for(io.StringIO()), waiting.LineProgress)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    shown = waiting.progress_for(Terminal())
    try:
        assert isinstance(shown, waiting.StatusProgress)
    finally:
        assert isinstance(shown, waiting.StatusProgress)
        shown.stop()


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (59.9, "59s"), (61, "1m01s"), (3725, "1h02m")])
def test_elapsed(seconds: float, text: str) -> None:
    assert waiting.elapsed(seconds) == text
