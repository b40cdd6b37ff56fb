"""Templates, the security headers every page carries, and problem pages (never a traceback)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from kubejit.durations import format_duration
from kubejit.errors import KubejitError

HTMX_VERSION = "2.0.11"
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

#: No inline script or style anywhere: everything comes from /ui/static/.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _duration(value: timedelta | None) -> str:
    return format_duration(value) if value is not None else "-"


_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["when"] = _when
_env.filters["duration"] = _duration


def page(request: Request, template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
    """A whole page or an htmx fragment; ``viewer`` (if any) and the CSRF token come in ``values``."""
    html = _env.get_template(template).render(request=request, htmx_version=HTMX_VERSION, **values)
    return secured(HTMLResponse(html, status_code=status))


R = TypeVar("R", bound=Response)


def secured(response: R) -> R:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def problem_page(request: Request, exc: KubejitError, *, viewer: Any = None) -> HTMLResponse:
    """The error as a page: what went wrong and what to do next, with the status of the API's answer."""
    return page(
        request,
        "problem.html",
        status=exc.http_status,
        title=exc.code.replace("-", " ").capitalize(),
        error=exc,
        viewer=viewer,
    )
