"""kubejit serve: the broker (API, expiry sweeper and reconciler) in one process."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from kubejit.cli.declare import command
from kubejit.cli.options import path_type

TYPE_CHECKING = False
if TYPE_CHECKING:  # config (pydantic) loads when the command runs, not for every `kubejit --help`
    from kubejit.config import BrokerSettings, Settings


def run_broker(settings: Settings) -> None:
    """Build the services (validating policy and clusters first) and serve until interrupted."""
    import uvicorn

    from kubejit.server.app import create_app
    from kubejit.server.wiring import build_services

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpx2", "alembic"):  # one line per HTTP call or migration step is noise
        logging.getLogger(chatty).setLevel(logging.WARNING)
    services = build_services(settings)
    app = create_app(
        services,
        max_body_bytes=settings.broker.max_body_bytes,
        expose_metrics=settings.broker.metrics_exposed,
        expose_api_docs=settings.broker.api_docs_exposed,
    )
    click.echo(f"kubejit broker listening on {settings.broker.url}", err=True)
    uvicorn.run(
        app,
        host=settings.broker.host,
        port=settings.broker.port,
        log_level="warning",
        **proxy_options(settings.broker),
    )


def proxy_options(broker: BrokerSettings) -> dict[str, Any]:
    """uvicorn's proxy-header options from ``broker.trustedProxies``, never from its environment.

    uvicorn's own default believes X-Forwarded-For from 127.0.0.1 (or FORWARDED_ALLOW_IPS): any
    process on the host could then claim any source address, with a fresh rate-limit bucket and a
    made-up address in the audit trail. Without trusted proxies the headers are not read at all.
    """
    trusted = list(broker.trusted_proxies)
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted}


@command()
@click.option(
    "--config",
    "-f",
    required=True,
    type=path_type(),
    envvar="KUBEJIT_CONFIG",
    show_envvar=True,
    help="The broker's YAML config file.",
)
@click.option("--host", help="Override broker.host from the config.")
@click.option("--port", type=int, help="Override broker.port from the config.")
@click.option(
    "--store-url",
    envvar="KUBEJIT_STORE_URL",
    show_envvar=True,
    help="Override store.url (e.g. from a Secret).",
)
def serve(
    config: Path, host: str | None = None, port: int | None = None, store_url: str | None = None
) -> None:
    """Run the broker: REST API, expiry sweeper and reconciler.

    The config names the clusters, the policy file and the store; it is validated before anything
    starts, and errors point at file:line:column. See docs/configuration.md.
    """
    from kubejit.config import load_settings

    run_broker(override_settings(load_settings(config), host=host, port=port, store_url=store_url))


def override_settings(
    settings: Settings, *, host: str | None = None, port: int | None = None, store_url: str | None = None
) -> Settings:
    """The config with the command line's overrides, checked like the file itself.

    ``--store-url`` (``KUBEJIT_STORE_URL``) exists so a PostgreSQL password can come from a
    Kubernetes Secret (the Helm chart) instead of sitting in the config file.
    """
    from pydantic import ValidationError

    from kubejit.config import Settings
    from kubejit.errors import ConfigError

    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if not overrides and not store_url:
        return settings
    update: dict[str, Any] = {"broker": settings.broker.model_copy(update=overrides)}
    if store_url:
        update["store"] = settings.store.model_copy(update={"url": store_url})
    try:  # the overrides pass the same checks as the file (the dev issuer only on loopback, say)
        return Settings.model_validate(settings.model_dump(by_alias=False) | update)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        given = "--host/--port" if overrides else "--store-url"
        raise ConfigError(f"{given}: {message}", hint="See docs/configuration.md.") from exc
