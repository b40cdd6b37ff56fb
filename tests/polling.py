"""Bounded polling for effects that take a moment (token review caches, sinks catching up).

The bound is a safety net against a hung test, not a speed assertion: it is generous on purpose.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(check: Callable[[], bool], *, what: str, within: float = 40, every: float = 0.5) -> None:
    """Return once ``check()`` is true; fail naming ``what`` if it never is within ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {within:.0f}s: {what}")
        time.sleep(every)
