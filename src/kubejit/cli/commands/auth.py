"""login / logout / whoami."""

from __future__ import annotations

from typing import Annotated

import typer

from kubejit.cli import render, session
from kubejit.cli.client import BrokerClient
from kubejit.cli.options import BrokerOpt, OutputOpt
from kubejit.errors import InvalidInput


def login(
    dev_user: Annotated[
        str | None, typer.Option("--dev-user", help="Log in as a user of the broker's embedded dev issuer.")
    ] = None,
    broker: BrokerOpt = None,
) -> None:
    """Log in to the kubejit broker and keep the session in ~/.config/kubejit (mode 0600)."""
    if not dev_user:
        raise InvalidInput(
            "say who to log in as", hint="On a dev broker: `kubejit login --dev-user alice` (see its config)."
        )
    url = session.broker_url(broker)
    with BrokerClient(url) as client:
        answer = client.call("POST", "/v1/dev/login", json={"user": dev_user})
    path = session.save(session.Session(broker=url, token=answer["token"], user=answer["user"]))
    render.console.print(f"Logged in to {url} as [bold]{answer['user']}[/] (session: {path}).")


def logout() -> None:
    """Forget the local session (and with it the cached credentials)."""
    from kubejit.exec_plugin import forget_tokens

    removed = session.clear()
    dropped = forget_tokens()  # kubectl must not keep working on tokens of a session that is gone
    render.console.print("Logged out." if removed else "You were not logged in.")
    if dropped:
        render.console.print(f"Dropped {dropped} cached kubectl token(s).")


def whoami(broker: BrokerOpt = None, output: OutputOpt = render.Output.table) -> None:
    """Show who you are to the broker, your groups, and what policy lets you request."""
    current = session.require()
    with BrokerClient(session.broker_url(broker), token=current.token) as client:
        me = client.call("GET", "/v1/whoami")
    if output is render.Output.json:
        render.as_json("WhoAmI", me)
        return
    render.console.print(f"[bold]{me['name']}[/] (issuer {me['issuer']}){'  admin' if me['admin'] else ''}")
    render.console.print(f"groups: {', '.join(me['groups']) or '-'}")
    render.console.print("you may request:" if me["may_request"] else "policy lets you request nothing.")
    for line in me["may_request"]:
        render.console.print(f"  - {line}")
