"""A grant id typed on the command line, checked before it goes into a URL path or a browser."""

from __future__ import annotations

import re

from kubejit.errors import InvalidInput

#: Grant ids become part of ServiceAccount names: a DNS label (the broker makes ``g`` + 12 hex digits).
_GRANT_ID = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def grant_id(value: str) -> str:
    """``value`` if it is a grant id; else an InvalidInput that says where ids come from."""
    if _GRANT_ID.fullmatch(value):
        return value
    shown = value if len(value) <= 70 else value[:67] + "..."
    raise InvalidInput(
        f"{shown!r} is not a grant id (lowercase letters, digits and '-', e.g. g1a2b3c4d5e6)",
        hint="Find ids with `kubejit requests`, `kubejit grants` or `kubejit reviews`.",
    )
