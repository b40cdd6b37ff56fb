"""Open an existing store for the audit commands: read only, never created, never migrated.

`kubejit audit verify` pointed at a mistyped SQLite path must not create an empty database and
call it intact; and an auditor's read must never change the schema under a running broker.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError

from kubejit.errors import ConfigError
from kubejit.store.engine import create_store_engine
from kubejit.store.transactions import read_transaction


def open_audit_store(url: str) -> Engine:
    try:
        parsed = sa.make_url(url)
    except ArgumentError:
        parsed = None  # create_store_engine explains what is wrong with it
    except ValueError as e:  # a port that is not a number; the message names it, not the password
        raise ConfigError(f"invalid store URL: {e}", hint="Check the port in --store-url.") from e
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or not Path(database).is_file():
            raise ConfigError(
                f"no kubejit database at {database or '(in memory)'}",
                hint="Pass the broker's config (--config) or its store URL (--store-url).",
            )
    engine = create_store_engine(url)
    with read_transaction(engine) as conn:
        present = sa.inspect(conn).has_table("audit_events")
    if not present:
        engine.dispose()
        raise ConfigError(
            "this database has no kubejit audit log (audit_events table)",
            hint="Point at the broker's store; it creates the tables when it first starts.",
        )
    return engine
