"""ASGI middleware: every request timed by route template, method and status class, for /metrics.

The route is the template FastAPI matched (``/v1/grants/{grant_id}``), never the raw path: a path
that matches no route is ``unmatched``, so scanners cannot mint new series.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kubejit import metrics


class MeasureRequests:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # the app raised before answering: the server answers 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None)
            metrics.observe_request(
                route=route if isinstance(route, str) else "unmatched",
                method=str(scope.get("method", "")),
                status=status,
                seconds=time.perf_counter() - started,
            )
