"""When to try a failing sink again: exponential backoff with jitter (pure; the random source is passed in).

The delay doubles with each consecutive failure up to a cap, and is then drawn from the upper half
of that interval ("equal jitter"), so brokers that lost the same SIEM at the same moment do not all
come back at the same instant, while no retry comes sooner than half the nominal delay.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def retry_delay(
    failures: int,
    *,
    initial: float,
    maximum: float,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait after ``failures`` consecutive failures (``failures`` >= 1)."""
    if failures < 1:
        raise ValueError("failures must be at least 1")
    nominal = min(maximum, initial * 2 ** min(failures - 1, 62))
    return float(nominal / 2 + uniform(0, nominal / 2))
