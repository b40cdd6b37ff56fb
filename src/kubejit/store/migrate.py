"""Schema migrations, run in code: no alembic.ini on disk, the scripts ship inside the package.

The server calls ``upgrade`` at start; ``current_revision``/``head_revision`` let a status command
say whether a database is behind without changing it.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from kubejit.errors import ConfigError
from kubejit.store.transactions import read_transaction, write_transaction

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The revision the code expects; there is exactly one head."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise ConfigError(
            f"the store migrations have {len(heads)} heads ({', '.join(sorted(heads))}), not one",
            hint="Merge them with `alembic merge heads` before release.",
        )
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    """The database's revision, or None when it has never been migrated."""
    with read_transaction(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (the head by default), in one transaction."""
    head_revision()
    config = alembic_config()
    with write_transaction(engine) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def check_at_head(engine: Engine) -> None:
    """Raise unless the database answers and is migrated to the code's head (``/readyz``)."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise ConfigError(
            f"the store is at revision {current or 'none'}, the code expects {head}",
            hint="Run `kubejit migrate` (docs/operations.md: upgrades with several replicas).",
        )
