"""Build the web pages' context from settings: the sign-in issuer, the session store, the hooks."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

import httpx

from kubejit.checks import read_private_file
from kubejit.clock import Clock
from kubejit.clusters.scan.escalation import past_the_grant
from kubejit.config import OidcIssuerSettings, Settings
from kubejit.errors import ConfigError
from kubejit.identity.dev_issuer import DevIssuer
from kubejit.identity.issuers import HTTP_TIMEOUT_SECONDS, Issuers
from kubejit.identity.principal import Principal
from kubejit.server.audit_records import login_event
from kubejit.server.deps import Services, admit
from kubejit.server.workers import Worker
from kubejit.store.audit_store import SqlAuditStore
from kubejit.store.web_sessions import SqlWebSessionStore
from kubejit.web.context import WebContext
from kubejit.web.sign_in import DevSignIn, OidcSignIn, SignInIssuer

log = logging.getLogger(__name__)

#: How often ended sessions and stale sign-ins are deleted.
SESSION_SWEEP_SECONDS = 300.0


def build_web(
    settings: Settings,
    services: Services,
    *,
    sessions: SqlWebSessionStore,
    audit: SqlAuditStore,
    dev: DevIssuer | None,
    issuers: Issuers,
    clock: Clock,
    built: contextlib.ExitStack,
    workers: bool,
) -> WebContext | None:
    web = settings.web
    if not web.enabled:
        return None
    sign_in = _sign_in_issuer(settings, dev=dev, issuers=issuers, clock=clock, built=built)
    if sign_in is None:
        log.warning(
            "web pages not served: no identity issuer has a login client (set web.issuer, web.clientId)"
        )
        return None
    idle = timedelta(minutes=web.session_idle_minutes)

    def signed_in(who: Principal) -> None:
        services.record([login_event(who.name, issuer=who.issuer, at=clock.now())])

    context = WebContext(
        grants=services.grants,
        sessions=sessions,
        sign_in=sign_in,
        audit=audit,
        public_url=settings.broker.url,
        role_cautions=past_the_grant,
        idle=idle,
        max_age=timedelta(hours=web.session_max_hours),
        users=services.users,
        on_request=lambda who: admit(services, who),
        on_sign_in=signed_in,
    )
    if workers:
        sweeper = Worker(
            "web-sessions",
            lambda: sessions.delete_ended(clock.now(), idle=idle),
            interval=SESSION_SWEEP_SECONDS,
        )
        sweeper.start()
        built.callback(sweeper.stop)
    return context


def _chosen(settings: Settings) -> OidcIssuerSettings | None:
    """The named issuer; unnamed: the first with a login client, or the only one given web.clientId."""
    wanted, configured = settings.web.issuer, settings.identity.issuers
    if wanted is not None:
        return next((s for s in configured if s.name == wanted), None)
    with_login = [s for s in configured if s.login is not None]
    if with_login:
        return with_login[0]
    return configured[0] if len(configured) == 1 and settings.web.client_id else None


def _sign_in_issuer(
    settings: Settings, *, dev: DevIssuer | None, issuers: Issuers, clock: Clock, built: contextlib.ExitStack
) -> SignInIssuer | None:
    if dev is not None and settings.web.issuer in (None, "dev"):
        return DevSignIn(dev, clock=clock)
    chosen = _chosen(settings)
    if chosen is None:
        return None
    verifier = issuers.by_name(chosen.name)
    if verifier is None:
        raise ConfigError(f"web: issuer {chosen.name} has no verifier", hint="Check identity.issuers.")
    client_id = settings.web.client_id or (chosen.login.client_id if chosen.login else None)
    if client_id is None:
        raise ConfigError(
            f"web: issuer {chosen.name} has no client for the web pages",
            hint="Set web.clientId (or the issuer's login.clientId), registered with the redirect URI "
            f"{settings.broker.url.rstrip('/')}/ui/auth/callback.",
        )
    secret_file = settings.web.client_secret_file
    secret = (
        read_private_file(secret_file, what="web client secret").decode().strip() if secret_file else None
    )
    http = httpx.Client(
        timeout=HTTP_TIMEOUT_SECONDS,
        verify=str(chosen.ca_file) if chosen.ca_file else True,
        follow_redirects=False,
        headers={"user-agent": "kubejit-broker"},
    )
    built.callback(http.close)
    return OidcSignIn(
        verifier, client_id=client_id, client_secret=secret, scopes=settings.web.scopes, http=http
    )
