"""The CLI's login session: broker URL and bearer token in a 0600 file under XDG_CONFIG_HOME.

An OIDC login also records where to renew the ID token (issuer, client, token endpoint); the refresh
token itself lives in ``kubejit.cli.credentials`` (OS keyring or its own 0600 file), never here.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from kubejit.errors import AuthenticationFailed, ConfigError
from kubejit.exec_plugin import write_private

DEFAULT_BROKER = "http://127.0.0.1:8080"


#: Renew the ID token this long before it expires, so a request never carries an expiring token.
REFRESH_MARGIN_SECONDS = 60


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
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
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
    from kubejit.identity.tokens import unverified_claims

    try:
        exp = unverified_claims(token).get("exp")
    except AuthenticationFailed:
        return True
    return not isinstance(exp, (int, float)) or exp - REFRESH_MARGIN_SECONDS <= time.time()


def _renew(session: Session) -> Session:
    import httpx

    from kubejit.cli import credentials, login_flows

    refresh_token = credentials.load(session.credential_key)
    if not refresh_token or not session.token_endpoint or not session.client_id:
        raise AuthenticationFailed("your login expired", hint="Run `kubejit login` again.")
    with httpx.Client(timeout=login_flows.HTTP_TIMEOUT) as http:
        tokens = login_flows.refresh(http, session.token_endpoint, session.client_id, refresh_token)
    if tokens.refresh_token and tokens.refresh_token != refresh_token:
        credentials.store(session.credential_key, tokens.refresh_token)  # rotated by the IdP
    renewed = replace(session, token=tokens.id_token)
    save(renewed)
    return renewed


def clear() -> bool:
    """Forget the session and its refresh token."""
    from kubejit.cli import credentials

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
