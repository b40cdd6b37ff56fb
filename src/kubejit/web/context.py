"""What the pages run on, handed over by the broker's wiring: the same services as the API's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from kubejit.audit.event import StoredEvent
from kubejit.grants.service import GrantService
from kubejit.identity.principal import Principal
from kubejit.ids import GrantId
from kubejit.web.sessions import SessionStore
from kubejit.web.sign_in import DevSignIn, SignInIssuer


class AuditReader(Protocol):
    def search_events(
        self,
        *,
        grant_id: GrantId | None = None,
        actor: str | None = None,
        cluster: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> list[StoredEvent]: ...


class PeopleSeen(Protocol):
    """``store.users.SqlUserDirectory.list``: username, issuer, groups, first_seen, last_login, active_grants."""

    def list(self) -> Sequence[object]: ...


@runtime_checkable
class RoleRules(Protocol):
    """A cluster adapter that can read a role's rules (``clusters.adapter.KubeClusterAdapter``)."""

    def role_rules(self, *, kind: str, name: str, namespace: str | None) -> list[dict[str, list[str]]]: ...


@dataclass
class WebContext:
    grants: GrantService
    sessions: SessionStore
    sign_in: SignInIssuer
    audit: AuditReader
    #: The broker's public URL: the redirect URI, the allowed Origin, and whether cookies are Secure.
    public_url: str
    #: A role's rules → the rights of them that reach past a grant (``clusters.scan.escalation.
    #: past_the_grant``: the scanner's own RBAC matching, handed over since web sits below clusters).
    role_cautions: Callable[[list[dict[str, list[str]]]], list[str]]
    idle: timedelta = timedelta(minutes=30)
    max_age: timedelta = timedelta(hours=12)
    users: PeopleSeen | None = None
    #: Called on every signed-in request with the session's principal: lock check, rate limit, users seen.
    on_request: Callable[[Principal], None] = lambda _: None
    #: Called once per sign-in (the ``auth.login`` audit event).
    on_sign_in: Callable[[Principal], None] = lambda _: None

    @property
    def origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def redirect_uri(self) -> str:
        return self.public_url.rstrip("/") + "/ui/auth/callback"

    @property
    def secure_cookies(self) -> bool:
        """Secure always, except plain http on a loopback address (the quick start, tests)."""
        parts = urlsplit(self.public_url)
        return not (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))

    @property
    def session_cookie(self) -> str:
        # __Host-: Secure, Path=/, no Domain: no sibling subdomain can set or shadow it.
        return "__Host-kubejit-session" if self.secure_cookies else "kubejit-session"

    @property
    def sign_in_cookie(self) -> str:
        return "__Host-kubejit-sign-in" if self.secure_cookies else "kubejit-sign-in"

    @property
    def dev(self) -> DevSignIn | None:
        return self.sign_in if isinstance(self.sign_in, DevSignIn) else None
