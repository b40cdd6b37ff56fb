"""Human durations ("30m", "1h30m", "2d") parsed strictly: bad input is an error, never a guess."""

from __future__ import annotations

import re
from datetime import timedelta

from kubejit.errors import InvalidInput

_PART = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Nothing kubejit grants lasts longer than this, whatever a policy says; it bounds parsing too.
MAX_DURATION = timedelta(days=31)


def parse_duration(text: str) -> timedelta:
    """Parse ``1h30m``-style text into a positive timedelta of at most 31 days."""
    value = text.strip().lower()
    if not value or _PART.sub("", value) != "" or len(value) > 32:
        raise InvalidInput(
            f"invalid duration {text!r}",
            hint="Use a positive whole number with a unit s, m, h or d, e.g. 30m, 1h30m, 2h.",
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(value))
    if seconds <= 0:
        raise InvalidInput(f"duration {text!r} must be greater than zero", hint="For example 30m or 1h.")
    if seconds > MAX_DURATION.total_seconds():
        raise InvalidInput(f"duration {text!r} is longer than {format_duration(MAX_DURATION)}")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The inverse of parse_duration for display: 5400s -> '1h30m'."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
