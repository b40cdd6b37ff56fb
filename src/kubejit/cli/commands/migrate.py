"""kubejit migrate: bring the store's schema to this release (what `kubejit serve` does at start).

For an upgrade of several replicas: run it once before the new release rolls out (a Job, a Helm
hook), or let the first new replica do it. Either way it is safe while replicas run and when several
run it at once: a migration holds the store's writer lock (PostgreSQL advisory lock, SQLite
``BEGIN IMMEDIATE``), so the second one waits and then finds the schema at head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def migrate(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-f", envvar="KUBEJIT_CONFIG", help="The broker's config (names the store)."
        ),
    ] = None,
    store_url: Annotated[
        str | None,
        typer.Option(
            "--store-url", envvar="KUBEJIT_STORE_URL", help="The store's URL (instead of --config)."
        ),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only say whether the store is behind (exit 1 if it is).")
    ] = False,
) -> None:
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
            typer.echo(f"store at revision {before or 'none'}; this release expects {head}")
            if before != head:
                raise typer.Exit(1)
            return
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    done = "already at" if before == after else f"migrated from {before or 'none'} to"
    typer.echo(f"store {done} revision {after}")
