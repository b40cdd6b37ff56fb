"""The CLI's login session: broker URL and bearer token in a 0600 file under XDG_CONFIG_HOME."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from kubejit.errors import AuthenticationFailed, ConfigError

DEFAULT_BROKER = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Session:
    broker: str
    token: str
    user: str


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kubejit"


def session_path() -> Path:
    return config_dir() / "session.json"


def save(session: Session) -> Path:
    path = session_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(session), out)
    os.replace(tmp, path)
    return path


def load() -> Session | None:
    path = session_path()
    try:
        data = json.loads(path.read_text())
        return Session(broker=str(data["broker"]), token=str(data["token"]), user=str(data["user"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"the session file {path} is unreadable or corrupt",
            hint="Run `kubejit logout` then `kubejit login`.",
        ) from exc


def require() -> Session:
    session = load()
    if session is None:
        raise AuthenticationFailed("you are not logged in", hint="Run `kubejit login --dev-user NAME` first.")
    return session


def clear() -> bool:
    try:
        session_path().unlink()
        return True
    except FileNotFoundError:
        return False


def broker_url(explicit: str | None) -> str:
    """--broker, then KUBEJIT_BROKER, then the logged-in session's broker, then the default."""
    if explicit:
        return explicit.rstrip("/")
    if os.environ.get("KUBEJIT_BROKER"):
        return os.environ["KUBEJIT_BROKER"].rstrip("/")
    session = load()
    return session.broker if session else DEFAULT_BROKER
