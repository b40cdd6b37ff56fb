"""Sign-in (authorization code + PKCE, state and nonce), sign-out, and the dev issuer's user picker."""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kubejit.checks import is_loopback
from kubejit.errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from kubejit.web.context import WebContext
from kubejit.web.guard import Ctx, FormFields, PageRoute, Posted, Seen, check_same_origin, form_fields
from kubejit.web.render import page
from kubejit.web.sessions import (
    SIGN_IN_TTL,
    SignInAttempt,
    WebSession,
    digest,
    new_secret,
    pkce_challenge,
    safe_return_to,
)

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)


def _cookie(response: Response, ctx: WebContext, name: str, value: str, *, max_age: timedelta) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(max_age.total_seconds()),
        path="/",
        secure=ctx.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def _drop_cookie(response: Response, ctx: WebContext, name: str) -> None:
    response.delete_cookie(name, path="/", secure=ctx.secure_cookies, httponly=True, samesite="lax")


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request, ctx: Ctx, next: str = "/ui/") -> Response:
    return page(
        request,
        "sign_in.html",
        title="Sign in",
        issuer=ctx.sign_in.name,
        dev=ctx.dev is not None,
        start=f"/ui/auth/start?{urlencode({'next': safe_return_to(next)})}",
    )


@router.get("/auth/start")
def start(ctx: Ctx, next: str = "/ui/") -> Response:
    """A new attempt: its id in a cookie, its state, nonce and PKCE verifier in the store."""
    attempt_id, state, nonce, verifier = new_secret(), new_secret(), new_secret(), new_secret()
    ctx.sessions.add_sign_in(
        SignInAttempt(
            id_hash=digest(attempt_id),
            state=state,
            nonce=nonce,
            code_verifier=verifier,
            return_to=safe_return_to(next),
            created_at=ctx.grants.clock.now(),
        )
    )
    url = ctx.sign_in.authorization_url(
        redirect_uri=ctx.redirect_uri, state=state, nonce=nonce, code_challenge=pkce_challenge(verifier)
    )
    response = RedirectResponse(url, status_code=303)
    _cookie(response, ctx, ctx.sign_in_cookie, attempt_id, max_age=SIGN_IN_TTL)
    return response


@router.get("/auth/callback")
def callback(
    request: Request,
    ctx: Ctx,
    state: str = "",
    code: str = "",
    error: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """Back from the issuer: this browser's attempt (cookie), its state, the code redeemed, the nonce."""
    attempt_id = request.cookies.get(ctx.sign_in_cookie, "")
    attempt = ctx.sessions.take_sign_in(digest(attempt_id)) if attempt_id else None
    if error:
        raise AuthenticationFailed(
            f"the identity provider refused the sign-in: {error}", hint="Sign in again."
        )
    now = ctx.grants.clock.now()
    if attempt is None or attempt.ended(now):
        raise AuthenticationFailed(
            "sign-in refused: this browser started no sign-in, or it took too long",
            hint="Start again from /ui/sign-in.",
        )
    if not state or not hmac.compare_digest(state, attempt.state):
        raise AuthenticationFailed("sign-in refused: the state does not match", hint="Sign in again.")
    who = ctx.sign_in.redeem(
        code=code, code_verifier=attempt.code_verifier, redirect_uri=ctx.redirect_uri, nonce=attempt.nonce
    )
    ctx.on_request(who)  # a locked person gets no session
    session_id = new_secret()  # a fresh id at sign-in: no session fixation
    ctx.sessions.add_session(
        WebSession(
            id_hash=digest(session_id),
            principal=who,
            created_at=now,
            last_seen_at=now,
            expires_at=now + ctx.max_age,
        )
    )
    ctx.on_sign_in(who)
    response = RedirectResponse(attempt.return_to, status_code=303)
    _drop_cookie(response, ctx, ctx.sign_in_cookie)
    _cookie(response, ctx, ctx.session_cookie, session_id, max_age=ctx.max_age)
    return response


@router.post("/sign-out")
def sign_out(ctx: Ctx, who: Seen, _: Posted) -> Response:
    """The session is deleted server-side: the cookie's id opens nothing afterwards, on any replica."""
    ctx.sessions.delete_session(digest(who.session_id))
    response = RedirectResponse("/ui/signed-out", status_code=303)
    _drop_cookie(response, ctx, ctx.session_cookie)
    return response


@router.get("/signed-out", response_class=HTMLResponse)
def signed_out(request: Request) -> Response:
    return page(request, "signed_out.html", title="Signed out")


# -- the dev issuer's authorization endpoint (quick start and tests only) ------------------------------


def _dev(request: Request, ctx: WebContext) -> None:
    """Only with the dev issuer on, and only to a browser on the broker's own host, directly."""
    if ctx.dev is None:
        raise NotFound("the dev issuer is not enabled on this broker", hint="Sign in with your IdP.")
    client = request.client.host if request.client else None
    if not is_loopback(client) or any(
        h.startswith(("forwarded", "x-real-ip", "x-forwarded-")) for h in request.headers
    ):
        raise PermissionDenied(
            "the dev issuer serves only browsers on the broker's own host, not through a proxy"
        )


@router.get("/dev/authorize", response_class=HTMLResponse)
def dev_authorize_page(
    request: Request,
    ctx: Ctx,
    redirect_uri: str = "",
    state: str = "",
    nonce: str = "",
    code_challenge: str = "",
    code_challenge_method: str = "",
) -> Response:
    _dev(request, ctx)
    assert ctx.dev is not None
    if redirect_uri != ctx.redirect_uri:
        raise InvalidInput("redirect_uri is not this broker's callback", hint="Start again from /ui/sign-in.")
    return page(
        request,
        "dev_authorize.html",
        title="Development sign-in",
        users=[(u, sorted(ctx.dev.issuer.users[u])) for u in ctx.dev.users],
        params={
            "redirect_uri": redirect_uri,
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": code_challenge_method,
        },
    )


@router.post("/dev/authorize")
def dev_authorize(
    request: Request, ctx: Ctx, fields: Annotated[FormFields, Depends(form_fields)]
) -> Response:
    """The picked user gets a one-time code for the callback, as an IdP's login page would hand out."""
    _dev(request, ctx)
    check_same_origin(request, ctx)
    assert ctx.dev is not None
    redirect_uri = fields.one("redirect_uri")
    if redirect_uri != ctx.redirect_uri:
        raise InvalidInput("redirect_uri is not this broker's callback", hint="Start again from /ui/sign-in.")
    code = ctx.dev.grant_code(
        user=fields.one("user"),
        nonce=fields.one("nonce"),
        challenge=fields.one("code_challenge"),
        method=fields.one("code_challenge_method"),
        redirect_uri=redirect_uri,
    )
    query = urlencode({"code": code, "state": fields.one("state")})
    return RedirectResponse(f"{redirect_uri}?{query}", status_code=303)
