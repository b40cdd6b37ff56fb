"""Alembic environment for kubejit's store.

Run programmatically by ``kubejit.store.migrate.upgrade`` (which hands over a connection), or by
the ``alembic`` command with ``store/alembic.ini`` and KUBEJIT_STORE_URL, to write new revisions.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from kubejit.store.engine import create_store_engine, default_store_url
from kubejit.store.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables when a revision needs it.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = (
        os.environ.get("KUBEJIT_STORE_URL") or config.get_main_option("sqlalchemy.url") or default_store_url()
    )
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit(
        "kubejit migrations run online only: set KUBEJIT_STORE_URL and run `alembic upgrade head`."
    )
run_migrations_online()
