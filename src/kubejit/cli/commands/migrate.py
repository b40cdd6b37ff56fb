"""kubejit migrate: bring the store's schema to this release (what `kubejit serve` does at start).

For an upgrade of several replicas: run it once before the new release rolls out (a Job, a Helm
hook), or let the first new replica do it. Either way it is safe while replicas run and when several
run it at once: a migration holds the store's writer lock (PostgreSQL advisory lock, SQLite
``BEGIN IMMEDIATE``), so the second one waits and then finds the schema at head.
"""

from __future__ import annotations

from pathlib import Path

import click

from kubejit.cli.declare import command
from kubejit.cli.options import path_type


@command()
@click.option(
    "--config",
    "-f",
    type=path_type(),
    envvar="KUBEJIT_CONFIG",
    show_envvar=True,
    help="The broker's config (names the store).",
)
@click.option(
    "--store-url",
    envvar="KUBEJIT_STORE_URL",
    show_envvar=True,
    help="The store's URL (instead of --config).",
)
@click.option("--check", is_flag=True, help="Only say whether the store is behind (exit 1 if it is).")
def migrate(config: Path | None = None, store_url: str | None = None, check: bool = False) -> None:
    """Migrate the store to this release's schema; safe while replicas run, and run twice at once."""
    from kubejit.errors import InvalidInput
    from kubejit.store import create_store_engine, current_revision, head_revision, upgrade

    if store_url is None:
        if config is None:
            raise InvalidInput(
                "which store? pass the broker's config or its store URL",
                hint="kubejit migrate --config /etc/kubejit/config.yaml (or --store-url URL).",
            )
        from kubejit.config import load_settings

        store_url = load_settings(config).store_url
    engine = create_store_engine(store_url)
    try:
        head, before = head_revision(), current_revision(engine)
        if check:
            click.echo(f"store at revision {before or 'none'}; this release expects {head}")
            if before != head:
                raise click.exceptions.Exit(1)
            return
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    done = "already at" if before == after else f"migrated from {before or 'none'} to"
    click.echo(f"store {done} revision {after}")
