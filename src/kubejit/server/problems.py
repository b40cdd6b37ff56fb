"""Every error leaves the API as RFC 9457 problem+json, from one place, and the OpenAPI document says so.

Routers and routes declare the errors they can raise with ``responses=declare(NotFound, ...)``: the
statuses, descriptions and the ``ProblemDetails`` schema come from errors.py, so a new error class or a
new route is documented by naming the error, never by writing a response by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from kubejit.errors import (
    ApprovalRefused,
    AuditUnavailable,
    AuthenticationFailed,
    ClusterConflict,
    ClusterError,
    ClusterForbidden,
    ClusterUnavailable,
    Conflict,
    InvalidInput,
    InvalidTransition,
    KubejitError,
    Locked,
    MalformedRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    RequestDenied,
    RequestTooLarge,
    StoreUnavailable,
)

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
_SCHEMA_REF = {"$ref": "#/components/schemas/ProblemDetails"}


class FieldProblem(BaseModel):
    field: str
    message: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details: every error answer of the API (``code`` is stable, ``hint`` says what next)."""

    model_config = ConfigDict(extra="allow")  # token exchange adds RFC 6749's error, error_description

    type: str
    title: str
    status: int
    detail: str
    code: str
    hint: str | None = None
    rule: str | None = None
    errors: list[FieldProblem] | None = None


#: What every operation can answer, whatever it does: malformed input, an oversized body, a busy store,
#: too many requests from one source (checked before routing).
COMMON: tuple[type[KubejitError], ...] = (
    MalformedRequest,
    InvalidInput,
    RequestTooLarge,
    StoreUnavailable,
    RateLimited,
)
#: What a route that needs a bearer token adds (``deps.Who``): a bad token, or a locked principal.
AUTHENTICATED: tuple[type[KubejitError], ...] = (AuthenticationFailed, Locked)
#: What a route that creates or deletes objects in a cluster, and audits it fail-closed, adds.
CLUSTER_WRITE: tuple[type[KubejitError], ...] = (
    ClusterError,
    ClusterUnavailable,
    ClusterForbidden,
    ClusterConflict,
    AuditUnavailable,
)
#: What a decision on an existing grant adds: who may, which grant, which state.
GRANT_DECISION: tuple[type[KubejitError], ...] = (
    PermissionDenied,
    ApprovalRefused,
    NotFound,
    Conflict,
    InvalidTransition,
    *CLUSTER_WRITE,
)


def declare(*errors: type[KubejitError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for routes that raise ``errors``: one problem+json response per status."""
    codes: dict[int, list[str]] = {}
    for error in errors:
        codes.setdefault(error.http_status, [])
        if error.code not in codes[error.http_status]:
            codes[error.http_status].append(error.code)
    return {
        status: {
            "description": "Problem: " + ", ".join(found),
            "content": {PROBLEM_JSON: {"schema": _SCHEMA_REF}},
        }
        for status, found in sorted(codes.items())
    }


def problem(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": f"https://kubejit.io/problems/{code}", "title": code.replace("-", " "), "status": status}
    body.update(detail=detail, code=code, **{k: v for k, v in extra.items() if v is not None})
    headers = {"WWW-Authenticate": 'Bearer realm="kubejit"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _kubejit_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KubejitError)
    if exc.http_status >= 500:
        log.warning("%s: %s", exc.code, exc.message)
    return error_response(exc)


def error_response(exc: KubejitError, **extra: Any) -> JSONResponse:
    """The problem+json answer for ``exc`` (with Retry-After when it is a rate limit)."""
    rule = exc.rule if isinstance(exc, RequestDenied) else None
    response = problem(exc.http_status, exc.code, exc.message, hint=exc.hint, rule=rule, **extra)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors[:5])
    return problem(422, "invalid-input", detail, errors=errors)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # a body FastAPI could not even parse (not JSON, not UTF-8)
        return problem(400, MalformedRequest.code, str(exc.detail), hint=MalformedRequest.default_hint)
    answer = problem(exc.status_code, "http-" + str(exc.status_code), str(exc.detail))
    answer.headers.update(exc.headers or {})
    if exc.status_code == 405:
        answer.headers["Allow"] = ", ".join(_allowed_methods(request))
    return answer


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path (RFC 9110 15.5.6), not only the first route's."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]


def install(app: FastAPI) -> None:
    app.add_exception_handler(KubejitError, _kubejit_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.openapi = _with_problem_schema(app.openapi)  # type: ignore[method-assign]


def _with_problem_schema(build: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """Add ``ProblemDetails`` to the document's components: ``declare`` refers to it by ``$ref``."""

    def openapi() -> dict[str, Any]:
        document = build()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        if "ProblemDetails" not in schemas:
            found = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(found.pop("$defs", {}))
            schemas["ProblemDetails"] = found
        return document

    return openapi
