"""The ``kubejit`` entry point: builds the Typer app and prints KubejitError without a traceback.

Importing this module must stay cheap: kubectl runs `kubejit token` (its exec credential plugin) on
every call, and ``main`` hands it to ``kubejit.exec.plugin`` before Typer, Rich or pydantic load.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # `typing` alone costs ~10 ms of start-up
if TYPE_CHECKING:
    import typer

    from kubejit.errors import KubejitError

app: typer.Typer  # built by _build() on first use (see __getattr__)


def _build() -> typer.Typer:
    import typer

    global app
    app = typer.Typer(
        name="kubejit",
        help="Just-in-time, short-lived, audited access to Kubernetes: request, approve, kubectl.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    def show_version(wanted: bool) -> None:
        if wanted:
            typer.echo(version_line())
            raise typer.Exit()

    @app.callback()
    def root(
        version: bool = typer.Option(
            False, "--version", "-V", is_eager=True, callback=show_version, help="Print the version and exit."
        ),
    ) -> None:
        """Just-in-time, short-lived, audited access to Kubernetes: request, approve, kubectl."""

    _register()
    return app


def __getattr__(name: str) -> object:
    """``kubejit.cli.app.app`` keeps working for importers (PEP 562), built when first asked for."""
    if name == "app":
        return _build()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register() -> None:
    from kubejit.cli.commands import (
        audit,
        auth,
        ci,
        dev_cluster,
        grants,
        kubeconfig,
        locks,
        policy,
        scan,
        serve,
        up,
        users,
        why,
    )

    app.command()(up.up)
    app.command()(auth.login)
    app.command()(auth.logout)
    app.command()(auth.whoami)
    grants.register(app)
    app.command()(kubeconfig.kubeconfig)
    app.command()(kubeconfig.token)
    app.command()(why.why)
    app.command()(users.users)
    locks.register(app)
    app.command()(serve.serve)
    app.add_typer(policy.app, name="policy")
    app.add_typer(audit.app, name="audit")
    app.add_typer(ci.app, name="ci")
    scan.register(app)
    app.add_typer(dev_cluster.app, name="dev-cluster")


def version_line() -> str:
    from kubejit import __version__

    return f"kubejit {__version__}"


def print_error(exc: KubejitError) -> None:
    from kubejit.cli.render import InertConsole, safe
    from kubejit.errors import RequestDenied

    # Message and hint may be the broker's problem detail: printed literally, as all server text.
    err = InertConsole(stderr=True, highlight=False, soft_wrap=True)
    rule = f" (policy rule: {exc.rule})" if isinstance(exc, RequestDenied) and exc.rule else ""
    err.print(f"[bold red]Error:[/] {safe(exc.message + rule)}", markup=True)
    if exc.hint:
        err.print(f"[bold]Hint:[/] {safe(exc.hint)}", markup=True)


def main(prog_name: str | None = None) -> None:
    """``prog_name``: how usage lines name the command (``kubectl jit`` when run as a kubectl plugin)."""
    if sys.argv[1:2] == ["token"]:  # kubectl's exec plugin: stdlib only when its cache is warm
        from kubejit.exec.plugin import main as token

        sys.exit(token(sys.argv[2:]))
    if sys.argv[1:] in (["--version"], ["-V"]):  # answered before Typer, Rich and pydantic load
        sys.stdout.write(version_line() + "\n")
        sys.exit(0)
    from kubejit.errors import KubejitError

    _build()
    try:
        app(prog_name=prog_name)
    except KubejitError as exc:
        if os.environ.get("KUBEJIT_DEBUG"):
            raise
        print_error(exc)
        sys.exit(exc.exit_code)
