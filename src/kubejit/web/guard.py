"""Who is signed in, and the checks every form post passes: CSRF token, Origin, body shape.

Pages raise kubejit errors like the API's routes; ``PageRoute`` turns them into problem pages (and a
missing session into a redirect to sign in), so no traceback and no JSON ever reaches a browser.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute

from kubejit.errors import (
    AuthenticationFailed,
    InvalidInput,
    KubejitError,
    MalformedRequest,
    PermissionDenied,
)
from kubejit.identity.principal import Principal
from kubejit.web.context import WebContext
from kubejit.web.render import problem_page, secured
from kubejit.web.sessions import csrf_matches, csrf_token, digest

log = logging.getLogger(__name__)

#: Fields a form may carry at most (the body size is capped by the app's BodySizeLimit too).
MAX_FORM_FIELDS = 64


class SignInNeeded(AuthenticationFailed):
    """No session (or an ended one): a page sends the browser to sign in and back."""


def context(request: Request) -> WebContext:
    found: WebContext = request.app.state.web
    return found


Ctx = Annotated[WebContext, Depends(context)]


@dataclass(frozen=True)
class Viewer:
    """The signed-in person and the session's form token."""

    principal: Principal
    session_id: str
    is_admin: bool

    @property
    def csrf(self) -> str:
        return csrf_token(self.session_id)

    @property
    def name(self) -> str:
        return self.principal.name


def current_viewer(request: Request, ctx: Ctx) -> Viewer:
    session_id = request.cookies.get(ctx.session_cookie, "")
    if not session_id:
        raise SignInNeeded("sign in to use the kubejit pages", hint="Sign in at /ui/sign-in.")
    id_hash = digest(session_id)
    session = ctx.sessions.get_session(id_hash)
    now = ctx.grants.clock.now()
    if session is None or session.ended(now, idle=ctx.idle):
        if session is not None:
            ctx.sessions.delete_session(id_hash)
        raise SignInNeeded("your session has ended", hint="Sign in again.")
    if session.needs_touch(now):
        ctx.sessions.touch_session(id_hash, now)
    ctx.on_request(session.principal)  # a lock in force refuses here, as on every API route
    request.state.viewer = viewer = Viewer(
        session.principal, session_id, is_admin=ctx.grants.is_admin(session.principal)
    )
    return viewer


Seen = Annotated[Viewer, Depends(current_viewer)]


class FormFields:
    """A url-encoded form, every field possibly repeated; values are strings, stripped of nothing."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def one(self, name: str, default: str = "") -> str:
        return next((v for k, v in self._pairs if k == name), default)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self._pairs if k == name]


async def form_fields(request: Request) -> FormFields:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise MalformedRequest(
            "a form post must be application/x-www-form-urlencoded", hint="Submit the form from its page."
        )
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedRequest(
            "the form is not valid UTF-8 url-encoded text, or has too many fields",
            hint="Submit the form from its page.",
        ) from exc
    return FormFields(pairs)


def checked_form(
    request: Request, ctx: Ctx, who: Seen, fields: Annotated[FormFields, Depends(form_fields)]
) -> FormFields:
    """The form of a state-changing post, after the cross-site checks: refused before any change."""
    check_same_origin(request, ctx)
    if not csrf_matches(who.session_id, fields.one("csrf_token")):
        raise PermissionDenied(
            "the form's CSRF token is missing or not this session's: nothing was changed",
            hint="Reload the page and submit the form again.",
        )
    return fields


Posted = Annotated[FormFields, Depends(checked_form)]


def check_same_origin(request: Request, ctx: WebContext) -> None:
    """A browser names the page that posted (Origin; Sec-Fetch-Site): only the broker's own pages may."""
    origin = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site")
    if (origin is not None and origin != ctx.origin) or site not in (None, "same-origin", "none"):
        raise PermissionDenied(
            "refused a form posted from another site: nothing was changed",
            hint=f"Use the pages at {ctx.origin}/ui/.",
        )


def text(fields: FormFields, name: str, *, max_length: int = 1000) -> str:
    value = fields.one(name).strip()
    if len(value) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters", hint="Shorten it.")
    return value


class PageRoute(APIRoute):
    """Errors become problem pages; a missing session sends a page view to sign in (and back)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return secured(await handler(request))
            except SignInNeeded as exc:
                if request.method == "GET" and "hx-request" not in request.headers:
                    target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
                    return secured(RedirectResponse(f"/ui/sign-in?next={target}", status_code=303))
                return problem_page(request, exc)
            except KubejitError as exc:
                return problem_page(request, exc, viewer=getattr(request.state, "viewer", None))
            except RequestValidationError as exc:
                fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:5])
                return problem_page(request, InvalidInput(f"invalid input: {fields}", hint="Check the form."))
            except Exception:  # a bug: logged here, shown as a page, never as a traceback
                log.exception("page %s failed", request.url.path)
                failed = KubejitError("the page failed; the broker's log has the details", hint="Try again.")
                return problem_page(request, failed)

        return run
