"""Options shared by many commands, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

from kubejit.cli.render import Output

BrokerOpt = Annotated[
    str | None,
    typer.Option("--broker", envvar="KUBEJIT_BROKER", help="Broker URL (default: the logged-in broker)."),
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table for people, json for scripts.")]
