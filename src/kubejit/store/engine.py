"""Engines for the two supported databases, configured once so every caller gets the same guarantees.

SQLite (the default) runs in WAL mode with foreign keys on, and its transactions are begun by
kubejit itself: writers ask for ``BEGIN IMMEDIATE`` so two processes can never read the same audit
tail and both append after it. PostgreSQL (``postgresql+psycopg://``) runs at READ COMMITTED and
serialises audit appends with an advisory lock (see ``transactions.py``).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from kubejit.errors import ConfigError

#: Milliseconds a SQLite writer waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 5000
#: Connection execution option that makes the next SQLite transaction ``BEGIN IMMEDIATE``.
WRITE_OPTION = "kubejit_write"

_URL_HINT = "Use sqlite:////absolute/path/kubejit.db or postgresql+psycopg://user:password@host:5432/dbname."


def default_store_url(environ: Mapping[str, str] | None = None) -> str:
    """SQLite in the user's data directory: $XDG_DATA_HOME (or ~/.local/share)/kubejit/kubejit.db."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_DATA_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = (
        Path(xdg)
        if xdg and Path(xdg).is_absolute()
        else Path(env.get("HOME") or Path.home()) / ".local/share"
    )
    return f"sqlite:///{base / 'kubejit' / 'kubejit.db'}"


def create_store_engine(url: str) -> Engine:
    """An Engine for ``url`` (SQLite or PostgreSQL via psycopg); raises ConfigError when unusable."""
    parsed = _parse(url)
    if parsed.drivername.startswith("sqlite"):
        return _sqlite_engine(parsed)
    return _postgres_engine(parsed)


def _parse(url: str) -> URL:
    try:
        parsed = sa.make_url(url)
    except ArgumentError as e:
        raise ConfigError(f"invalid store URL {_redact(url)!r}", hint=_URL_HINT) from e
    # From the scheme's text: asking SQLAlchemy for the driver would import a dialect that may not exist.
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    raise ConfigError(
        f"unsupported store URL scheme {parsed.drivername!r}",
        hint="kubejit supports SQLite (sqlite:///...) and PostgreSQL with psycopg 3 (postgresql+psycopg://...).",
    )


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1] if "@" in url else url


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database in ("", ":memory:"):
        # One shared connection, or each connection would see its own empty database.
        engine = sa.create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        path = _prepare_sqlite_path(database)
        url = url.set(database=str(path))
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    _check_connects(engine, f"cannot open SQLite database {url.database!r}")
    return engine


def _prepare_sqlite_path(database: str) -> Path:
    path = Path(database).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"cannot create the directory for the SQLite database {str(path)!r}: {e.strerror}",
            hint="Choose a store path in a directory you can write to.",
        ) from e
    target = path if path.exists() else path.parent
    if path.is_dir() or not os.access(target, os.W_OK):
        raise ConfigError(
            f"the SQLite database path {str(path)!r} is not a writable file",
            hint="Choose a store path in a directory you can write to.",
        )
    return path


def _configure_sqlite_connection(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # kubejit emits BEGIN itself (below); the driver's own transaction handling would get in the way.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _begin_sqlite_transaction(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front, so a writer's reads (the audit tail, a grant's
    # version) cannot be overtaken by another writer before its own writes land.
    immediate = conn.get_execution_options().get(WRITE_OPTION, False)
    statement = "BEGIN IMMEDIATE" if immediate else "BEGIN"
    # Sent on the driver's connection: through SQLAlchemy's statement machinery it cost ~20x more,
    # and every transaction pays it. Driver errors are wrapped as SQLAlchemy would have wrapped them.
    driver = conn.connection.driver_connection
    assert driver is not None  # a checked-out connection always has one
    try:
        driver.execute(statement)
    except sqlite3.Error as e:
        raise DBAPIError.instance(statement, None, e, sqlite3.Error) from e


def _postgres_engine(url: URL) -> Engine:
    try:
        import psycopg  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            "the PostgreSQL driver psycopg is not installed",
            hint="Install it with `pip install 'kubejit[postgres]'`.",
        ) from e
    # READ COMMITTED matters: each statement after the advisory lock sees the previous writer's commit.
    options: dict[str, Any] = {"isolation_level": "READ COMMITTED", "pool_pre_ping": True}
    return sa.create_engine(url, **options)


def _check_connects(engine: Engine, message: str) -> None:
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_master")
    except SQLAlchemyError as e:
        engine.dispose()
        reason = str(getattr(e, "orig", e)).splitlines()[0]
        raise ConfigError(
            f"{message}: {reason}", hint="Check that the file is a kubejit SQLite database you can write."
        ) from e
