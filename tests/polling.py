"""Bounded polling for effects that take a moment (token review caches, sinks catching up, RBAC).

The bound is a safety net against a hung test, not a speed assertion: it is generous on purpose.
``poll`` hands back the last result so the caller's assert can show what it saw; ``eventually`` is
for a plain yes/no. Both are this one loop: tests keep no polling loops of their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(probe: Callable[[], T], done: Callable[[T], object], *, within: float = 40, every: float = 0.5) -> T:
    """Call ``probe`` until ``done`` holds for its result or ``within`` seconds pass; return the last result."""
    deadline = time.monotonic() + within
    result = probe()
    while not done(result) and time.monotonic() < deadline:
        time.sleep(every)
        result = probe()
    return result


def eventually(check: Callable[[], bool], *, what: str, within: float = 40, every: float = 0.5) -> None:
    """Return once ``check()`` is true; fail naming ``what`` if it never is within ``within`` seconds."""
    if not poll(check, bool, within=within, every=every):
        raise AssertionError(f"never happened within {within:.0f}s: {what}")
