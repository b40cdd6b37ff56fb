"""kubejit users: the people the broker has seen (admins only)."""

from __future__ import annotations

from kubejit.cli import render
from kubejit.cli.client import BrokerClient
from kubejit.cli.declare import command
from kubejit.cli.options import broker_option, output_option
from kubejit.local import session


@command()
@broker_option
@output_option
def users(broker: str | None = None, output: render.Output = render.Output.table) -> None:
    """People who used the broker: issuer, groups, first and last login, grants held now.

    Kubernetes keeps no user list; this is kubejit's. End everything one person holds with
    `kubejit revoke --user NAME`.
    """
    url, current = session.for_broker(broker)
    with BrokerClient(url, token=current.token) as client:
        people = client.call("GET", "/v1/users")
    if output is render.Output.json:
        render.as_json("UserList", people)
        return
    if not people:
        render.say("No one has used this broker yet.")
        return
    from rich.table import Table

    table = Table(title="Users", title_justify="left")
    for column in ("USER", "ISSUER", "GROUPS", "FIRST SEEN", "LAST LOGIN", "ACTIVE GRANTS"):
        table.add_column(column)
    for p in people:
        table.add_row(
            render.safe(p["username"]),
            render.safe(p["issuer"]),
            render.safe(", ".join(p["groups"]) or "-"),
            render.safe(p["first_seen"][:19].replace("T", " ")),
            render.safe(p["last_login"][:19].replace("T", " ")),
            render.safe(", ".join(p["active_grants"]) or "-"),
        )
    render.console.print(table)
