"""Small checks that config sections and identity settings share."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def is_loopback(host: str | None) -> bool:
    """``localhost`` or a loopback IP: where plain http and the dev issuer are tolerated."""
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def duplicates(values: Iterable[str]) -> list[str]:
    """The values that occur more than once, sorted (for 'duplicate names: a, b' errors)."""
    seen: set[str] = set()
    again: set[str] = set()
    for value in values:
        (again if value in seen else seen).add(value)
    return sorted(again)
