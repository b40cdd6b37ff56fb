"""Request-scoped dependencies: the services (from app.state) and the authenticated principal."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kubejit.audit.delivery.status import SinkStatus
from kubejit.errors import AuthenticationFailed, StoreUnavailable
from kubejit.grants.exchange import WorkloadExchange
from kubejit.grants.ports import AuditEvent, AuditLog
from kubejit.grants.service import GrantService
from kubejit.identity.cluster_tokens import ClusterTokenIssuer
from kubejit.identity.dev_issuer import DevIssuer
from kubejit.identity.issuers import LoginOffer
from kubejit.identity.principal import Principal
from kubejit.identity.tokens import unverified_claims
from kubejit.server.audit_records import login_event
from kubejit.server.auth_failures import AuthFailureSummary
from kubejit.server.rate_limits import RequestLimiter
from kubejit.server.schemas import ClusterOut
from kubejit.store.users import PersonSeen
from kubejit.web.context import WebContext

log = logging.getLogger(__name__)


class Authenticator(Protocol):
    def authenticate(self, token: str) -> Principal: ...


class UserDirectory(Protocol):
    """Per-person accounting (``store.users.SqlUserDirectory``): cheap to call on every request."""

    def seen(self, who: Principal) -> bool: ...

    def list(self) -> Sequence[PersonSeen]: ...


class SessionsSeen:
    """Which identity-provider tokens this process has already accepted (a bounded, recent set).

    People log in at their IdP, not at the broker, so the broker's ``auth.login`` record is the first
    use of each new ID token: one event per session and replica, not one per request.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def first_use(self, token: str) -> bool:
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return False
            self._seen[key] = None
            if len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
            return True


@dataclass
class Services:
    grants: GrantService
    authenticator: Authenticator
    clusters: Sequence[ClusterOut]
    dev_issuer: DevIssuer | None = None
    #: CI/CD token exchange; None when no workload issuer is configured.
    exchange: WorkloadExchange | None = None
    users: UserDirectory | None = None
    #: Issuers people can log in at with `kubejit login` (public information).
    login_offers: Sequence[LoginOffer] = ()
    #: Each audit sink's delivery lag, for /metrics (docs/audit-delivery.md).
    audit_status: Callable[[], Sequence[SinkStatus]] | None = None
    #: Called when the app stops (workers, engine).
    on_shutdown: list[Callable[[], None]] = field(default_factory=list)
    sessions_seen: SessionsSeen = field(default_factory=SessionsSeen)
    #: Rate limits per source and principal (server/rate_limits.py); None: no limits.
    limiter: RequestLimiter | None = None
    #: Repeated auth.failed per source summarised (server/auth_failures.py); None: each one written.
    auth_failures: AuthFailureSummary | None = None
    #: Where events about callers, not grants, go (logins, auth failures); None: the grant service's.
    audit: AuditLog | None = None
    #: kubejit as the JWT issuer of clusters in jwt mode (discovery + JWKS routes); None: no such cluster.
    cluster_issuer: ClusterTokenIssuer | None = None
    #: How people reach the broker (``broker.publicUrl``): the base of each request's page link.
    public_url: str | None = None
    #: Named readiness checks for /readyz (server/health.py); each raises when the replica cannot serve.
    ready_checks: dict[str, Callable[[], None]] = field(default_factory=dict)
    #: The loaded policy's sha256 (and a refused newer file) for /readyz (server/policy_reload.py).
    policy_status: Callable[[], dict[str, object]] | None = None
    #: The web pages under /ui/ (kubejit.web); None: not served.
    web: WebContext | None = None

    def record(self, events: Sequence[AuditEvent]) -> None:
        """Record events that change no grant, about the broker's callers (a login, an auth failure)."""
        (self.audit or self.grants.audit).record(events)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


#: Reads the bearer token, and declares the scheme in the OpenAPI document; ``principal`` checks it.
_BEARER = HTTPBearer(auto_error=False, description="An ID token of a configured issuer (or the dev issuer).")


def principal(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> Principal:
    """The caller, from a bearer token; every failure is audited with source IP and user agent."""
    # HTTPBearer has read the header: None when it is missing or names another scheme.
    token = bearer.credentials if bearer is not None else ""
    source = request.client.host if request.client else None
    try:
        if not token.strip():
            raise AuthenticationFailed("missing bearer token", hint="Log in with `kubejit login`.")
        who = svc.authenticator.authenticate(token.strip())
    except AuthenticationFailed as exc:
        refusal = svc.limiter.auth_failed(source) if svc.limiter is not None else None
        event = AuditEvent(
            action="auth.failed",
            actor="anonymous",
            at=svc.grants.clock.now(),
            outcome="failure",
            details={
                "error": exc.message,
                "source_ip": source,
                "user_agent": request.headers.get("user-agent", "")[:200],
                "path": request.url.path,
                "claimed_issuer": _claimed_issuer(token.strip()),
            },
        )
        if svc.auth_failures is not None:
            svc.auth_failures.failed(source, event)  # written now, or counted for one summary
        elif refusal is None:
            svc.record([event])
        if refusal is not None:
            raise refusal from exc
        raise
    if svc.limiter is not None:
        svc.limiter.admit_principal(who.name)
    svc.grants.check_not_locked(who)  # 403 naming the lock; cached per process for at most a second
    if who.issuer != "dev" and not who.claims and svc.sessions_seen.first_use(token.strip()):
        # The dev issuer records its logins itself (POST /v1/dev/login); workloads are audited per exchange.
        svc.record([login_event(who.name, issuer=who.issuer, at=svc.grants.clock.now())])
    _seen(svc, who)
    return who


def admit(svc: Services, who: Principal) -> None:
    """What every request of a known principal passes after authentication (the web pages' too):
    the per-principal rate limit, the lock check, and the per-person accounting."""
    if svc.limiter is not None:
        svc.limiter.admit_principal(who.name)
    svc.grants.check_not_locked(who)
    _seen(svc, who)


def _seen(svc: Services, who: Principal) -> None:
    if svc.users is not None:
        try:
            svc.users.seen(who)
        except StoreUnavailable:
            # Accounting must not lock people out while the database is busy; the next request retries.
            log.warning("could not record that %s was seen: the store is unavailable", who.name)


def _claimed_issuer(token: str) -> str | None:
    """The unverified ``iss`` of a refused token, for the audit trail (never the token itself)."""
    try:
        iss = unverified_claims(token).get("iss")
    except AuthenticationFailed:
        return None
    return iss[:200] if isinstance(iss, str) else None


Svc = Annotated[Services, Depends(services)]
Who = Annotated[Principal, Depends(principal)]
