"""Browser sessions and sign-in attempts, as pure data and rules (the store keeps them, hashed).

A session id is 256 random bits, given to the browser once in a cookie; the store keeps only its
SHA-256, so a copy of the database opens no session. The CSRF token is derived from the id (a
synchronizer token bound to the session, never stored). A session ends at its idle or its absolute
limit, whichever comes first, and at sign-out (deleted server-side).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from kubejit.identity.principal import Principal

#: A sign-in that has not come back from the issuer by then is dropped.
SIGN_IN_TTL = timedelta(minutes=10)
#: Activity is written at most this often (each write takes the store's writer lock).
TOUCH_EVERY = timedelta(seconds=60)


def new_secret() -> str:
    """256 random bits, URL-safe: a session id, a sign-in attempt id, a state, a nonce."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the store keeps of a secret the browser holds."""
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_token(session_id: str) -> str:
    """The session's form token: derived from its id under another label, so the stored hash is no token."""
    return hashlib.sha256(b"kubejit-csrf\0" + session_id.encode()).hexdigest()


def csrf_matches(session_id: str, offered: str) -> bool:
    return hmac.compare_digest(csrf_token(session_id), offered)


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) without padding."""
    raw = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class WebSession:
    id_hash: str
    principal: Principal
    created_at: datetime
    last_seen_at: datetime
    #: The absolute end, whatever the activity.
    expires_at: datetime

    def ended(self, now: datetime, *, idle: timedelta) -> bool:
        return now >= self.expires_at or now >= self.last_seen_at + idle

    def needs_touch(self, now: datetime) -> bool:
        return now >= self.last_seen_at + TOUCH_EVERY


@dataclass(frozen=True)
class SignInAttempt:
    """One round trip to the issuer: what the callback checks (state, nonce) and proves (PKCE verifier)."""

    id_hash: str
    state: str
    nonce: str
    code_verifier: str
    #: Where to go after sign-in: a path under /ui/ only (never an absolute URL: no open redirect).
    return_to: str
    created_at: datetime

    def ended(self, now: datetime) -> bool:
        return now >= self.created_at + SIGN_IN_TTL


def safe_return_to(path: str | None) -> str:
    """A local /ui/ path, or the home page: ``//evil.example`` and ``https://…`` are not local."""
    if not path or not path.startswith("/ui/") or path.startswith("//") or "\\" in path:
        return "/ui/"
    return path


class SessionStore(Protocol):
    """Where sessions live, shared by every replica (``store.web_sessions.SqlWebSessionStore``)."""

    def add_session(self, session: WebSession) -> None: ...

    def get_session(self, id_hash: str) -> WebSession | None: ...

    def touch_session(self, id_hash: str, at: datetime) -> None: ...

    def delete_session(self, id_hash: str) -> None: ...

    def add_sign_in(self, attempt: SignInAttempt) -> None: ...

    def take_sign_in(self, id_hash: str) -> SignInAttempt | None:
        """The attempt, deleted in the same step: a callback URL works once."""
        ...

    def delete_ended(self, now: datetime, *, idle: timedelta) -> int:
        """Drop ended sessions and stale attempts; how many rows went."""
        ...
