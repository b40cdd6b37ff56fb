"""The ``kubejit`` entry point: builds the Typer app and prints KubejitError without a traceback.

Importing this module must stay cheap: kubectl runs `kubejit token` (its exec credential plugin) on
every call, and ``main`` hands it to ``kubejit.exec.plugin`` before Typer, Rich or pydantic load.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # `typing` alone costs ~10 ms of start-up
if TYPE_CHECKING:
    from typing import Any

    import typer
    import typer.core

    from kubejit.errors import KubejitError

app: typer.Typer  # built by _build() on first use (see __getattr__)


#: Each command and the module under kubejit.cli.commands that defines it, in the order `kubejit
#: --help` lists them. A command's module is imported when the command is asked for (so `kubejit
#: whoami` loads auth.py, not audit, scan or dev-cluster and their dependencies).
COMMANDS = {
    "up": "up",
    **dict.fromkeys(("login", "logout", "whoami"), "auth"),
    **dict.fromkeys(("request", "requests", "approve", "deny", "grants", "revoke", "extend"), "grants"),
    "open": "open_page",
    **dict.fromkeys(("reviews", "review"), "reviews"),
    **dict.fromkeys(("kubeconfig", "token"), "kubeconfig"),
    "why": "why",
    "users": "users",
    **dict.fromkeys(("lock", "unlock", "locks"), "locks"),
    "serve": "serve",
    "migrate": "migrate",
    **dict.fromkeys(("cluster-setup", "rotate-jwt-key"), "cluster_setup"),
    **dict.fromkeys(("scan", "who-can"), "scan"),
    "policy": "policy",  # Typer lists groups after commands
    "audit": "audit",
    "ci": "ci",
    "dev-cluster": "dev_cluster",
}
#: Modules that add their commands themselves (``register(app)``), and those that are a command group.
_REGISTERING = ("grants", "locks", "scan", "cluster_setup", "open_page")
_GROUPS = ("policy", "audit", "ci", "dev-cluster")


def _typer(**settings: Any) -> typer.Typer:
    import typer

    return typer.Typer(pretty_exceptions_enable=False, **settings)


def _build() -> typer.Typer:
    import typer

    global app
    app = _typer(
        name="kubejit",
        help="Just-in-time, short-lived, audited access to Kubernetes: request, approve, kubectl.",
        no_args_is_help=True,
        cls=_lazy_group(),
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

    return app


def __getattr__(name: str) -> object:
    """``kubejit.cli.app.app`` keeps working for importers (PEP 562), built when first asked for."""
    if name == "app":
        return _build()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _load(module_name: str) -> dict[str, Any]:
    """The click commands of one module, converted by Typer exactly as if registered on the root."""
    import importlib

    import typer.main

    module = importlib.import_module(f"kubejit.cli.commands.{module_name}")
    part = _typer()
    names = [name for name, home in COMMANDS.items() if home == module_name]
    if module_name in _REGISTERING:
        module.register(part)
    elif names[0] in _GROUPS:
        part.add_typer(module.app, name=names[0])
    else:
        for name in names:
            part.command()(getattr(module, name))
    return dict(typer.main.get_group(part).commands)


def _lazy_group() -> type[typer.core.TyperGroup]:
    from collections.abc import Iterator, MutableMapping
    from typing import Any

    from typer.core import TyperGroup

    class LazyCommands(MutableMapping[str, Any]):
        """The root's commands: every name known up front, a command built when first looked up (help
        and shell completion look them all up)."""

        def __init__(self, built: dict[str, Any]) -> None:
            self.built = built

        def __getitem__(self, name: str) -> Any:
            if name not in self.built and name in COMMANDS:
                self.built.update(_load(COMMANDS[name]))
            return self.built[name]

        def __setitem__(self, name: str, command: Any) -> None:
            self.built[name] = command

        def __delitem__(self, name: str) -> None:
            del self.built[name]

        def __iter__(self) -> Iterator[str]:
            yield from COMMANDS
            yield from (name for name in self.built if name not in COMMANDS)

        def __len__(self) -> int:
            return len(set(COMMANDS) | set(self.built))

    class LazyGroup(TyperGroup):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.commands = LazyCommands(dict(self.commands))

        def list_commands(self, ctx: Any) -> list[str]:
            return list(self.commands)  # the names only: nothing is imported to list them

    return LazyGroup


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
