"""One broker per SQLite database: a second `kubejit serve` on the same file refuses to start.

SQLite serialises writers on one host, but a broker's workers assume every replica shares one
store *and* a store that several hosts can reach: that is PostgreSQL. Two brokers on one SQLite
file are a sign of a mistake (a second replica, an old process left running), so the broker holds
an exclusive ``flock`` on ``<database>.broker-lock`` while it serves. The kernel drops the lock
when the process ends, however it ends (SIGKILL included): a restart never finds a stale claim.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Engine

from kubejit.errors import ConfigError


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".broker-lock")


def claim_sqlite_database(engine: Engine) -> Callable[[], None]:
    """Take this SQLite database for this process; returns the release. A no-op for PostgreSQL
    and for in-memory SQLite (nothing else can open it)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return lambda: None
    path = lock_path(Path(database))
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(
            f"another broker (pid {holder}) is serving the SQLite database {database}",
            hint="Run one broker per SQLite database; several replicas need PostgreSQL "
            "(docs/operations.md, several replicas). Stop the other one first.",
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)

    def release() -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    return release
