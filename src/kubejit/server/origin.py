"""ASGI middleware: attribute every audit event a request causes to its source IP and user agent.

Pure ASGI (not BaseHTTPMiddleware) so the context variable it sets is the one the sync routes see:
Starlette copies the request's context into the thread that runs them.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from kubejit.grants.origin import Origin, acting_from


class RecordOrigin:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        agent = next((v for k, v in scope.get("headers", []) if k == b"user-agent"), b"")
        origin = Origin(client[0] if client else None, agent.decode("latin-1") or None)
        with acting_from(origin):
            await self.app(scope, receive, send)
