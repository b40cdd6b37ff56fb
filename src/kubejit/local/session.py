"""The login session: broker URL and bearer token in a 0600 file under XDG_CONFIG_HOME.

An OIDC login also records where to renew the ID token (issuer, client, token endpoint); the refresh
token itself lives in ``kubejit.local.credentials`` (OS keyring or its own 0600 file), never here.
Standard library only: the CLI and the exec plugin (on its way to the broker) both read it, and the
plugin must not load httpx or joserfc just to check an ID token's ``exp``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from kubejit.errors import AuthenticationFailed, ConfigError
from kubejit.local.private_files import write_private

DEFAULT_BROKER = "http://127.0.0.1:8080"


#: Renew the ID token this long before it expires, so a request never carries an expiring token.
REFRESH_MARGIN_SECONDS = 60
#: As the broker's limit (kubejit.identity.tokens.MAX_TOKEN_BYTES): a longer "token" is not a JWT.
MAX_TOKEN_BYTES = 16 * 1024


@dataclass(frozen=True)
class Session:
    broker: str
    token: str
    user: str
    #: Set by an OIDC login (None for --dev-user): where to renew the token.
    issuer_url: str | None = None
    client_id: str | None = None
    token_endpoint: str | None = None

    @property
    def credential_key(self) -> str:
        return f"{self.broker}|{self.issuer_url}"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kubejit"


def session_path() -> Path:
    return config_dir() / "session.json"


def save(session: Session) -> Path:
    path = session_path()
    # A temporary file per process: kubectl runs the exec plugin many times at once, and each may renew.
    write_private(str(path), json.dumps(asdict(session)))
    return path


def load() -> Session | None:
    path = session_path()
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        optional = {k: str(data[k]) for k in ("issuer_url", "client_id", "token_endpoint") if data.get(k)}
        return Session(
            broker=str(data["broker"]), token=str(data["token"]), user=str(data["user"]), **optional
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"the session file {path} is unreadable or corrupt",
            hint="Run `kubejit logout` then `kubejit login`.",
        ) from exc


def require() -> Session:
    """The current session, its ID token renewed first if it is about to expire."""
    session = load()
    if session is None:
        raise AuthenticationFailed("you are not logged in", hint="Run `kubejit login` first.")
    if session.issuer_url and _expires_soon(session.token):
        session = _renew(session)
    return session


def _expires_soon(token: str) -> bool:
    exp = token_expiry(token)
    return exp is None or exp - REFRESH_MARGIN_SECONDS <= time.time()


def token_expiry(token: str) -> float | None:
    """A JWT's ``exp``, NOT verified (the broker verifies): only to decide when to renew. None when the
    token is not a JWT or has no numeric ``exp``. base64 and json, not joserfc: that costs 0.1 s."""
    import base64
    import binascii

    parts = token.split(".")
    if len(parts) != 3 or len(token) > MAX_TOKEN_BYTES:
        return None
    payload = parts[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) else None


def _renew(session: Session) -> Session:
    from kubejit.local import credentials
    from kubejit.local.renewal import refresh_id_token

    refresh_token = credentials.load(session.credential_key)
    if not refresh_token or not session.token_endpoint or not session.client_id:
        raise AuthenticationFailed("your login expired", hint="Run `kubejit login` again.")
    id_token, rotated = refresh_id_token(session.token_endpoint, session.client_id, refresh_token)
    if rotated and rotated != refresh_token:
        credentials.store(session.credential_key, rotated)  # rotated by the IdP
    renewed = replace(session, token=id_token)
    save(renewed)
    return renewed


def clear() -> bool:
    """Forget the session and its refresh token."""
    from kubejit.local import credentials

    try:
        current = load()
    except ConfigError:
        current = None
    if current is not None and current.issuer_url:
        credentials.forget(current.credential_key)
    try:
        session_path().unlink()
        return True
    except FileNotFoundError:
        return False


def for_broker(explicit: str | None) -> tuple[str, Session]:
    """The broker to call and the session to call it with. The session's token only goes to the broker
    it was obtained for: a stray --broker or KUBEJIT_BROKER must not hand it to another host."""
    current = require()
    url = broker_url(explicit)
    if url != current.broker.rstrip("/"):
        raise AuthenticationFailed(
            f"you are logged in to the broker {current.broker}, not {url}",
            hint=f"Run `kubejit login --broker {url}`, or leave out --broker / KUBEJIT_BROKER.",
        )
    return url, current


def broker_url(explicit: str | None) -> str:
    """--broker, then KUBEJIT_BROKER, then the logged-in session's broker, then the default."""
    if explicit:
        return explicit.rstrip("/")
    if os.environ.get("KUBEJIT_BROKER"):
        return os.environ["KUBEJIT_BROKER"].rstrip("/")
    session = load()
    return session.broker.rstrip("/") if session else DEFAULT_BROKER
