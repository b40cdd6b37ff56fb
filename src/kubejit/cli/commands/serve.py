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
    from kubejit.server.tls import ReloadingTls


def run_broker(settings: Settings) -> None:
    """Build the services (validating policy and clusters first) and serve until interrupted."""
    import uvicorn

    from kubejit.server import logs
    from kubejit.server.app import create_app
    from kubejit.server.wiring import build_services

    logs.configure(settings.logging.format)
    tls = reloading_tls(settings.broker)  # a bad pair stops the broker before anything starts
    services = build_services(settings)
    app = create_app(
        services,
        max_body_bytes=settings.broker.max_body_bytes,
        expose_metrics=settings.broker.metrics_exposed,
        expose_api_docs=settings.broker.api_docs_exposed,
    )
    tls_options = tls_serving(tls, services.on_shutdown)
    logging.getLogger("kubejit.serve").info("kubejit broker listening on %s", settings.broker.url)
    uvicorn.run(
        app,
        host=settings.broker.host,
        port=settings.broker.port,
        log_level="warning",
        # SIGTERM: stop accepting, let requests in flight finish, then the lifespan stops the workers.
        timeout_graceful_shutdown=settings.broker.shutdown_grace_seconds,
        log_config=None,  # uvicorn's loggers go through ours (one format, JSON included)
        **proxy_options(settings.broker),
        **tls_options,
    )


def reloading_tls(broker: BrokerSettings) -> ReloadingTls | None:
    from kubejit.server.tls import ReloadingTls

    return ReloadingTls(broker.tls.cert_file, broker.tls.key_file) if broker.tls else None


def tls_serving(tls: ReloadingTls | None, on_shutdown: list[Any]) -> dict[str, Any]:
    """uvicorn's TLS option: one context, its pair re-read while serving (stopped with the app)."""
    if tls is None:
        return {}
    from kubejit.server.tls import POLL_SECONDS
    from kubejit.server.workers import Worker

    watcher = Worker("tls-reload", tls.reload_if_changed, interval=POLL_SECONDS)
    watcher.start()
    on_shutdown.append(watcher.stop)
    return {"ssl_context_factory": lambda _config, _default: tls.context}


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
@click.option("--tls-cert-file", type=path_type(), help="Override broker.tls.certFile (PEM chain).")
@click.option("--tls-key-file", type=path_type(), help="Override broker.tls.keyFile (PEM key).")
def serve(
    config: Path,
    host: str | None = None,
    port: int | None = None,
    store_url: str | None = None,
    tls_cert_file: Path | None = None,
    tls_key_file: Path | None = None,
) -> None:
    """Run the broker: REST API, expiry sweeper and reconciler.

    The config names the clusters, the policy file and the store; it is validated before anything
    starts, and errors point at file:line:column. See docs/configuration.md.
    """
    from kubejit.config import load_settings

    settings = override_settings(load_settings(config), host=host, port=port, store_url=store_url)
    run_broker(override_tls(settings, cert_file=tls_cert_file, key_file=tls_key_file))


def override_tls(settings: Settings, *, cert_file: Path | None, key_file: Path | None) -> Settings:
    """``--tls-cert-file``/``--tls-key-file`` over ``broker.tls``: both, or one over the file's pair."""
    from kubejit.config import TlsSettings
    from kubejit.errors import ConfigError

    if cert_file is None and key_file is None:
        return settings
    current = settings.broker.tls
    cert = cert_file or (current.cert_file if current else None)
    key = key_file or (current.key_file if current else None)
    if cert is None or key is None:
        raise ConfigError(
            "--tls-cert-file and --tls-key-file go together",
            hint="Give both, or set the other in broker.tls of the config.",
        )
    tls = TlsSettings(cert_file=cert.resolve(), key_file=key.resolve())
    return settings.model_copy(update={"broker": settings.broker.model_copy(update={"tls": tls})})


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
