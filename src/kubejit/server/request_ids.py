"""ASGI middleware: each request gets an id, echoed as ``X-Request-ID`` and put on its log lines.

A caller's (or proxy's) ``X-Request-ID`` is kept when it is short, plain text (letters, digits,
``._:-``, at most 128); anything else is replaced by a fresh id, so a header cannot forge log
structure or smuggle a payload into the logs. Each request is also logged once, at INFO, with its
route template, status and duration (the access log).
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kubejit import logcontext

HEADER = b"x-request-id"
_VALID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")

access_log = logging.getLogger("kubejit.access")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's id when it is acceptable, else a new one."""
    given = next((value for name, value in headers if name == HEADER), None)
    if given is not None and _VALID.fullmatch(given):
        return given.decode("ascii")
    return uuid.uuid4().hex


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_from(list(scope.get("headers", [])))
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, rid.encode("ascii"))]}
            await send(message)

        with logcontext.serving(rid, scope):
            try:
                await self.app(scope, receive, sending)
            finally:
                route = getattr(scope.get("route"), "path", None)
                access_log.info(
                    "%s %s %d %.3fs",
                    str(scope.get("method", ""))[:10],
                    route if isinstance(route, str) else "(unmatched)",
                    status,
                    time.perf_counter() - started,
                )
