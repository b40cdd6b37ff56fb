"""How a kubejit command is declared: click options on a plain function, which stays callable.

``@command()`` builds the click command from the function's ``@click.option``/``@click.argument``
decorators and its docstring, files it where the root finds it (``declared(module)``, see
``kubejit.cli.app.COMMANDS``) or in the ``group`` given, and returns the function itself: code and
tests call it with its Python defaults. click is used directly (not Typer) because a command's start
is what every `kubejit` call pays: click builds its parameters at import from what the decorators
say, with no type inspection (docs/dependencies.md).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])

_DECLARED: dict[str, dict[str, click.Command]] = {}


def _write_as_written(text: str, formatter: click.HelpFormatter) -> None:
    """The first paragraph is wrapped; the rest (examples, lists) keeps the docstring's own lines."""
    summary, _, rest = text.partition("\n\n")
    formatter.write_paragraph()
    with formatter.indentation():
        formatter.write_text(summary)
        for paragraph in rest.split("\n\n") if rest else ():
            formatter.write_paragraph()
            for line in paragraph.splitlines():
                formatter.write(f"{'':>{formatter.current_indent}}{line}\n")


def _first_paragraph(text: str | None) -> str:
    import inspect

    return " ".join(inspect.cleandoc(text or "").partition("\n\n")[0].split())


class Command(click.Command):
    """A command whose --help shows its docstring's examples line by line, as written, and whose line
    in its group's list is the docstring's whole first paragraph (wrapped, never cut)."""

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or _first_paragraph(self.help)

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        import inspect

        if self.help:
            _write_as_written(inspect.cleandoc(self.help), formatter)

    def invoke(self, ctx: click.Context) -> object:
        gc.enable()  # off while the CLI started (kubejit.cli.app.main); a command may run for hours
        return super().invoke(ctx)


class Group(click.Group):
    """A command group (``kubejit policy``, ``kubejit audit`` ...): its commands listed in the order
    they are declared, each shown as the docstring's first line."""

    command_class = Command

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or _first_paragraph(self.help)

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        import inspect

        if self.help:
            _write_as_written(inspect.cleandoc(self.help), formatter)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


def group(name: str, help: str) -> Group:
    """A command group of the root, defined by its own module as ``app``."""
    return Group(
        name, help=help, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]}
    )


def command(name: str | None = None, *, group: click.Group | None = None) -> Callable[[F], F]:
    """Declares ``f`` a command (named after it, ``_`` as ``-``), into ``group`` or for the root."""

    def declare(f: F) -> F:
        made = click.command(name or f.__name__.replace("_", "-"), cls=Command)(f)
        if group is not None:
            group.add_command(made)
        else:
            _DECLARED.setdefault(f.__module__, {})[made.name or ""] = made
        return f

    return declare


def declared(module: str) -> dict[str, click.Command]:
    """The root commands a module declared (after it was imported)."""
    return _DECLARED.get(module, {})
