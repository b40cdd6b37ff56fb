"""Every error leaves the API as RFC 9457 problem+json, from one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kubejit.errors import KubejitError, RateLimited, RequestDenied

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


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


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem(exc.status_code, "http-" + str(exc.status_code), str(exc.detail))


def install(app: FastAPI) -> None:
    app.add_exception_handler(KubejitError, _kubejit_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
