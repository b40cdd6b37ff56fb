"""The ``kubejit`` entry point: builds the Typer app and prints KubejitError without a traceback."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from kubejit.errors import KubejitError, RequestDenied

app = typer.Typer(
    name="kubejit",
    help="Just-in-time, short-lived, audited access to Kubernetes: request, approve, kubectl.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register() -> None:
    from kubejit.cli.commands import auth, dev_cluster, grants, policy, scan, serve, up

    app.command()(auth.login)
    app.command()(auth.logout)
    app.command()(auth.whoami)
    grants.register(app)
    app.command()(serve.serve)
    app.command()(up.up)
    app.add_typer(policy.app, name="policy")
    app.add_typer(dev_cluster.app, name="dev-cluster")
    scan.register(app)


def print_error(exc: KubejitError) -> None:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    rule = f" (policy rule: {exc.rule})" if isinstance(exc, RequestDenied) and exc.rule else ""
    err.print(f"[bold red]Error:[/] {escape(exc.message + rule)}", markup=True)
    if exc.hint:
        err.print(f"[bold]Hint:[/] {escape(exc.hint)}", markup=True)


def main() -> None:
    _register()
    try:
        app()
    except KubejitError as exc:
        if os.environ.get("KUBEJIT_DEBUG"):
            raise
        print_error(exc)
        sys.exit(exc.exit_code)
