"""Options shared by many commands, declared once (click decorators: see ``kubejit.cli.declare``)."""

from __future__ import annotations

import click

from kubejit.cli.render import Output

broker_option = click.option(
    "--broker",
    envvar="KUBEJIT_BROKER",
    show_envvar=True,
    help="Broker URL (default: the logged-in broker).",
)
output_option = click.option(
    "--output",
    "-o",
    type=click.Choice(Output),
    default=Output.table,
    show_default=True,
    help="table for people, json for scripts.",
)


def path_type(*, file_okay: bool = True, dir_okay: bool = True, exists: bool = False) -> click.Path:
    """A file or folder argument, handed to the command as a ``pathlib.Path``: with ``exists``, click
    checks that it is there, of the kind allowed and readable before the command runs; otherwise the
    command checks it."""
    from pathlib import Path

    return click.Path(path_type=Path, file_okay=file_okay, dir_okay=dir_okay, exists=exists)
