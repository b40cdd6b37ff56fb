"""Read and write transactions, with the lock that keeps the audit chain single-file.

Every write takes the database-wide writer lock first (SQLite ``BEGIN IMMEDIATE``; PostgreSQL
``pg_advisory_xact_lock``), because every grant write also appends to the audit chain and the
chain has one tail. Locking at the start, before any row lock, also rules out lock-order deadlocks.
Driver errors that mean "try again later" become ``StoreUnavailable``, without SQL or parameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from kubejit.errors import StoreUnavailable
from kubejit.store.engine import WRITE_OPTION

#: The advisory lock key for audit appends on PostgreSQL (ASCII "kubejit\0", an arbitrary constant).
AUDIT_LOCK_KEY = 0x6B7562656A697400


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction holding the writer lock; commits on success, rolls back on any exception."""
    with _unavailable_on_driver_error(), engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
            yield conn


def driver_execute(
    conn: Connection, sql: str, params: Sequence[Any] | dict[str, Any] = (), *, many: bool = False
) -> list[tuple[Any, ...]]:
    """Run prebuilt ``sql`` on the driver's own cursor; the rows it answers (none for a write).

    For hot statements whose parameters and results need no type processing (the audit tail and its
    INSERT): SQLAlchemy's statement machinery cost ~50 µs a statement, several times the statement.
    Driver errors are wrapped as SQLAlchemy would wrap them (a lost connection is invalidated), so
    callers and ``StoreUnavailable`` see no difference.
    """
    return _on_driver_cursor(conn, sql, params, many=many)[0]


def driver_rowcount(conn: Connection, sql: str, params: Sequence[Any] | dict[str, Any]) -> int:
    """``driver_execute`` for a write: the number of rows it changed."""
    return _on_driver_cursor(conn, sql, params)[1]


def _on_driver_cursor(
    conn: Connection, sql: str, params: Any, *, many: bool = False
) -> tuple[list[tuple[Any, ...]], int]:
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None  # a checked-out connection always has one
    cursor = dbapi_connection.cursor()
    try:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
        rows = [] if cursor.description is None else [tuple(row) for row in cursor.fetchall()]
        return rows, int(cursor.rowcount)
    except conn.dialect.loaded_dbapi.Error as e:
        lost = conn.dialect.is_disconnect(e, dbapi_connection, cursor)
        if lost:
            conn.invalidate(e)
        raise DBAPIError.instance(
            sql, None, e, conn.dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=conn.dialect
        ) from e
    finally:
        cursor.close()


class Prepared:
    """A statement compiled once per dialect and sent on the driver's cursor, with SQLAlchemy's own
    bind and result processors (JSON, UTC times, booleans): the same values reach the driver and come
    back, for a fraction of the cost of ``Connection.execute``.

    For the statements on every activation and token mint (a grant's read and its conditional UPDATE,
    a token's INSERT, the lock check). A statement rendered per call (an "expanding" IN) cannot be one.
    """

    def __init__(self, statement: sa.Update | sa.Insert | sa.Select[Any]) -> None:
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def execute(self, conn: Connection, params: dict[str, Any]) -> int:
        """Run it with ``params`` (every bind parameter by name); the number of rows it changed."""
        compiled = self._compiled(conn.dialect)
        return _on_driver_cursor(conn, compiled.sql, compiled.arguments(params))[1]

    def rows(self, conn: Connection, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Run a SELECT; each row as a dict by column key, its values processed as SQLAlchemy would."""
        compiled = self._compiled(conn.dialect)
        found = _on_driver_cursor(conn, compiled.sql, compiled.arguments(params))[0]
        keys, processors = compiled.keys, compiled.results
        return [
            {
                key: value if processor is None else processor(value)
                for key, processor, value in zip(keys, processors, row, strict=True)
            }
            for row in found
        ]

    def _compiled(self, dialect: sa.Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            found = self._by_dialect[dialect.name] = _Compiled(self.statement, dialect)
        return found


class _Compiled:
    def __init__(self, statement: sa.Update | sa.Insert | sa.Select[Any], dialect: sa.Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.positional = compiled.positional
        self.names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.binds)
        self.binds = {
            name: processor
            for name in self.names
            if (processor := compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
        }
        #: Values written into the statement (``kind == 'user'``) are bind parameters with a value.
        self.defaults = {
            name: bind.effective_value for name in self.names if not (bind := compiled.binds[name]).required
        }
        columns = list(statement.selected_columns) if isinstance(statement, sa.Select) else []
        self.keys = tuple(str(column.key) for column in columns)
        self.results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )

    def arguments(self, params: dict[str, Any]) -> list[Any] | dict[str, Any]:
        binds, given = self.binds, {**self.defaults, **params}
        values = {name: binds[name](given[name]) if name in binds else given[name] for name in self.names}
        return [values[name] for name in self.names] if self.positional else values


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    with _unavailable_on_driver_error(), engine.connect() as conn, conn.begin():
        yield conn


@contextmanager
def _unavailable_on_driver_error() -> Iterator[None]:
    try:
        yield
    except OperationalError as e:
        raise StoreUnavailable(f"the database did not answer: {_first_line(e)}") from e
    except DBAPIError as e:
        if e.connection_invalidated:
            raise StoreUnavailable(f"the database connection was lost: {_first_line(e)}") from e
        raise


def _first_line(error: DBAPIError) -> str:
    # str(error) carries the SQL and its parameters; the driver's own message does not.
    return (str(error.orig).strip().splitlines() or ["unknown error"])[0]
