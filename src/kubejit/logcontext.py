"""What the current log line is about: the request being served and the grant being worked on.

Context variables, so a line logged deep in the service (a deferred cleanup, a cluster outage) names
its request and grant without every signature carrying them. The HTTP layer sets the request
(``server/request_ids.py``); the grant service and its workers name the grant they work on.
Standard library only: the JSON log formatter (``server/logs.py``) reads them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_request_id: ContextVar[str | None] = ContextVar("kubejit_request_id", default=None)
_grant_id: ContextVar[str | None] = ContextVar("kubejit_grant_id", default=None)
#: The ASGI scope of the request: routing fills in its path parameters (``grant_id``) later.
_scope: ContextVar[Mapping[str, Any] | None] = ContextVar("kubejit_request_scope", default=None)


@contextmanager
def serving(request_id: str, scope: Mapping[str, Any]) -> Iterator[None]:
    tokens = (_request_id.set(request_id), _scope.set(scope))
    try:
        yield
    finally:
        _scope.reset(tokens[1])
        _request_id.reset(tokens[0])


@contextmanager
def about_grant(grant_id: str) -> Iterator[None]:
    token = _grant_id.set(grant_id)
    try:
        yield
    finally:
        _grant_id.reset(token)


def request_id() -> str | None:
    return _request_id.get()


def grant_id() -> str | None:
    """The grant a worker named, else the ``grant_id`` of the route being served."""
    named = _grant_id.get()
    if named is not None:
        return named
    scope = _scope.get()
    params = scope.get("path_params") if scope is not None else None
    value = params.get("grant_id") if isinstance(params, Mapping) else None
    return value if isinstance(value, str) else None
