"""Small checks that config sections and identity settings share."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from kubejit.errors import ConfigError


def is_loopback(host: str | None) -> bool:
    """``localhost`` or a loopback IP: where plain http and the dev issuer are tolerated."""
    if host in ("localhost", "127.0.0.1", "::1"):  # the usual spellings, without loading ipaddress
        return True
    import ipaddress

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


def read_private_file(path: Path, *, what: str) -> bytes:
    """A secret key file's bytes, refused when group or others may read or write it.

    Refused, not fixed: a key others could read may have been copied, and only its owner can decide
    whether to replace it. The mode is checked on the open file, so a swap after the check cannot
    slip a looser file in.
    """
    with open(path, "rb") as handle:
        mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"{what} {path} is open to group or others (mode {mode:04o}); a secret key must be 0600",
                hint=f"Run `chmod 600 {path}`, and replace the key if someone else may have read it.",
            )
        return handle.read()


def check_url(url: str, *, what: str) -> str:
    """https, or http only on a loopback host (tests, a local IdP): keys over plain HTTP are forgeable."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return url
    raise ConfigError(
        f"{what} {url!r} must be an https:// URL (http:// is allowed on loopback only)",
        hint="Use the issuer's https URL, exactly as it appears in the tokens' 'iss' claim.",
    )
