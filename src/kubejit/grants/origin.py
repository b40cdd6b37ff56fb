"""Where the current request came from (source IP, user agent), for every audit event it causes.

The HTTP layer sets it for the duration of one request (``server/origin.py``) and the store adds it
to each event it appends. A context variable rather than a parameter: a single request writes
events deep inside the service (activation, cleanup, token records) and in the authentication
step, and every one of them must carry the origin without widening each signature. Background
workers run outside any request, so their events carry none. Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

#: User agents are attacker-controlled text: keep what identifies a client, not a payload.
MAX_USER_AGENT = 200


@dataclass(frozen=True)
class Origin:
    source_ip: str | None = None
    user_agent: str | None = None

    def details(self) -> dict[str, str | None]:
        return {"source_ip": self.source_ip, "user_agent": self.user_agent}


_current: ContextVar[Origin | None] = ContextVar("kubejit_request_origin", default=None)


@contextmanager
def acting_from(origin: Origin) -> Iterator[Origin]:
    """Attribute everything recorded inside the block to ``origin``."""
    clipped = Origin(origin.source_ip, (origin.user_agent or "")[:MAX_USER_AGENT] or None)
    token = _current.set(clipped)
    try:
        yield clipped
    finally:
        _current.reset(token)


def current_origin() -> Origin | None:
    return _current.get()
