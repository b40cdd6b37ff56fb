"""``POST /v1/token-exchange``: RFC 8693 token exchange for CI/CD jobs (the route is thin).

The body is the RFC's form (``application/x-www-form-urlencoded``; JSON is accepted too):
``grant_type=urn:ietf:params:oauth:grant-type:token-exchange``, ``subject_token`` (the job's OIDC
token), ``subject_token_type`` (``...:token-type:jwt`` or ``...:id_token``), ``audience`` = the cluster,
and ``scope`` = space-separated ``namespace:<name>`` (repeatable), ``role:<name>``, ``duration:<30m>``;
each is optional when the matching workload rule names exactly one. Errors are problem+json like the
rest of the API, plus the RFC 6749 members ``error`` and ``error_description``; the status follows the
API (401 bad token, 403 refused by policy, 422 malformed), not RFC 6749's blanket 400 (docs/ci.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from kubejit.durations import parse_duration
from kubejit.errors import (
    AuthenticationFailed,
    ConfigError,
    InvalidInput,
    KubejitError,
    NotFound,
    PermissionDenied,
    RateLimited,
    RequestDenied,
)
from kubejit.grants.exchange import Exchanged
from kubejit.policy.workloads import WorkloadTarget
from kubejit.server.deps import Services
from kubejit.server.problems import AUTHENTICATED, CLUSTER_WRITE, COMMON, declare, error_response
from kubejit.server.schemas import ClusterOut

router = APIRouter(prefix="/v1", tags=["token exchange"], responses=declare(*COMMON))

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
SUBJECT_TOKEN_TYPES = ("urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token")
#: A Kubernetes ServiceAccount token is a JWT; it is a bearer token for the cluster's API server.
ISSUED_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
_FIELDS = frozenset(
    {"grant_type", "subject_token", "subject_token_type", "audience", "scope", "requested_token_type"}
)
_MAX_NAMESPACES = 20


class ExchangeError(InvalidInput):
    """A malformed exchange request, with its RFC 6749 error code."""

    def __init__(self, message: str, *, error: str = "invalid_request", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.error = error


_FORM_SCHEMA = {
    "type": "object",
    "required": ["grant_type", "subject_token", "subject_token_type"],
    "properties": {
        "grant_type": {"type": "string", "enum": [GRANT_TYPE]},
        "subject_token": {"type": "string", "description": "The CI job's OIDC token."},
        "subject_token_type": {"type": "string", "enum": list(SUBJECT_TOKEN_TYPES)},
        "audience": {"type": "string", "description": "The cluster."},
        "scope": {"type": "string", "description": "namespace:<name> ... role:<name> duration:<10m>"},
        "requested_token_type": {"type": "string"},
    },
}


@router.post(
    "/token-exchange",
    summary="Exchange a CI/CD job's OIDC token for a short grant and a kubeconfig (RFC 8693)",
    response_model=None,
    responses=declare(*AUTHENTICATED, PermissionDenied, RequestDenied, NotFound, ConfigError, *CLUSTER_WRITE),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": _FORM_SCHEMA},
                "application/json": {"schema": _FORM_SCHEMA},
            },
        }
    },
)
async def token_exchange(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        exchange = services.exchange
        if exchange is None:
            raise NotFound(
                "token exchange is not enabled on this broker",
                hint="Configure workloadIssuers: in the broker config (docs/ci.md).",
            )
        fields = _fields(await request.body(), request.headers.get("content-type", ""))
        token, target = _parse(fields)
        source = request.client.host if request.client else None
        client = {"source_ip": source, "user_agent": request.headers.get("user-agent", "")[:200]}
        limiter = services.limiter
        if limiter is not None:
            limiter.check_auth_failures(source)  # each refused exchange is an audit write
        try:
            done = await run_in_threadpool(exchange.exchange, token, target, client=client)
        except AuthenticationFailed:
            if limiter is not None:
                limiter.auth_failed(source)  # the next one past the allowance is refused above
            raise
        return _answer(done, services.clusters, now=services.grants.clock.now())
    except KubejitError as exc:
        return _problem(exc)


def _fields(body: bytes, content_type: str) -> dict[str, list[str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExchangeError("the request body is not UTF-8") from exc
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ExchangeError("the request body is not valid JSON") from exc
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ExchangeError("the JSON body must be an object of strings")
        return {key: [value] for key, value in data.items()}
    try:
        return parse_qs(text, keep_blank_values=False, strict_parsing=False, max_num_fields=32)
    except ValueError as exc:  # more fields than any exchange has
        raise ExchangeError("the request has too many fields") from exc


def _one(fields: dict[str, list[str]], name: str, *, required: bool = False) -> str | None:
    values = fields.get(name, [])
    if len(values) > 1:
        raise ExchangeError(f"{name} is given more than once")
    if not values:
        if required:
            raise ExchangeError(f"{name} is missing", hint="See docs/ci.md for the request's fields.")
        return None
    return values[0]


def _parse(fields: dict[str, list[str]]) -> tuple[str, WorkloadTarget]:
    unknown = sorted(set(fields) - _FIELDS)
    if unknown:
        raise ExchangeError(
            f"unsupported parameter {unknown[0]!r}", hint=f"Known: {', '.join(sorted(_FIELDS))}."
        )
    grant_type = _one(fields, "grant_type", required=True)
    if grant_type != GRANT_TYPE:
        raise ExchangeError(
            f"unsupported grant_type {grant_type!r}",
            error="unsupported_grant_type",
            hint=f"Use {GRANT_TYPE}.",
        )
    token = _one(fields, "subject_token", required=True) or ""
    token_type = _one(fields, "subject_token_type", required=True)
    if token_type not in SUBJECT_TOKEN_TYPES:
        raise ExchangeError(
            f"unsupported subject_token_type {token_type!r}", hint=f"Use {SUBJECT_TOKEN_TYPES[0]}."
        )
    requested = _one(fields, "requested_token_type")
    if requested not in (None, ISSUED_TOKEN_TYPE, "urn:ietf:params:oauth:token-type:access_token"):
        raise ExchangeError(f"cannot issue a token of type {requested!r}", error="invalid_target")
    return token, _target(_one(fields, "audience"), _one(fields, "scope") or "")


def _target(audience: str | None, scope: str) -> WorkloadTarget:
    namespaces: list[str] = []
    role = duration = None
    for item in scope.split():
        kind, _, value = item.partition(":")
        if kind == "namespace" and value:
            namespaces.append(value)
        elif kind == "role" and value and role is None:
            role = value
        elif kind == "duration" and value and duration is None:
            duration = parse_duration(value)
        else:
            raise ExchangeError(
                f"invalid scope item {item[:80]!r}",
                error="invalid_scope",
                hint="Use namespace:<name> (repeatable), role:<name> and duration:<e.g. 10m>.",
            )
    if len(namespaces) > _MAX_NAMESPACES:
        raise ExchangeError(f"at most {_MAX_NAMESPACES} namespaces", error="invalid_scope")
    return WorkloadTarget(
        cluster=audience or None, namespaces=tuple(namespaces), role=role, duration=duration
    )


def _answer(done: Exchanged, clusters: Sequence[ClusterOut], *, now: datetime) -> JSONResponse:
    grant = done.grant
    cluster = next((c for c in clusters if c.name == grant.cluster), None)
    if cluster is None or not cluster.server:
        raise ConfigError(f"the broker does not know the API server address of cluster {grant.cluster}")
    # The grant's end, not the token's (at least 10 min): deleting the ServiceAccount ends the token.
    ends = grant.expires_at or now + grant.duration
    seconds = max(0, int((ends - now).total_seconds()))
    namespace = grant.namespaces[0]
    body = {
        "access_token": done.token.token,
        "issued_token_type": ISSUED_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": seconds,
        "grant_id": grant.id,
        "principal": done.principal.name,
        "cluster": grant.cluster,
        "namespaces": list(grant.namespaces),
        "role": grant.role.name,
        "expires_at": ends.isoformat(),
        "kubeconfig": workload_kubeconfig(
            cluster, token=done.token.token, namespace=namespace, grant_id=grant.id
        ),
    }
    # RFC 6749 5.1: responses holding a token are never cached.
    return JSONResponse(body, headers={"cache-control": "no-store", "pragma": "no-cache"})


def workload_kubeconfig(cluster: ClusterOut, *, token: str, namespace: str, grant_id: str) -> str:
    """A kubeconfig with one context: the cluster, the grant's token, the granted namespace preset."""
    entry: dict[str, Any] = {"server": cluster.server}
    if cluster.certificate_authority_data:
        entry["certificate-authority-data"] = cluster.certificate_authority_data
    user = f"kubejit-{grant_id}"
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster.name, "cluster": entry}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": cluster.name, "context": {"cluster": cluster.name, "user": user, "namespace": namespace}}
        ],
        "current-context": cluster.name,
        "preferences": {},
    }
    return yaml.safe_dump(document, sort_keys=False)


def _oauth_error(exc: KubejitError) -> str:
    if isinstance(exc, ExchangeError):
        return exc.error
    if isinstance(exc, AuthenticationFailed):
        return "invalid_grant"
    if isinstance(exc, (RequestDenied, NotFound)):
        return "invalid_target"
    if isinstance(exc, PermissionDenied):
        return "access_denied"
    if isinstance(exc, InvalidInput):
        return "invalid_request"
    if isinstance(exc, RateLimited):
        return "temporarily_unavailable"
    return "temporarily_unavailable" if exc.http_status == 503 else "server_error"


def _problem(exc: KubejitError) -> JSONResponse:
    response = error_response(exc, error=_oauth_error(exc), error_description=exc.message)
    response.headers["cache-control"] = "no-store"
    return response
