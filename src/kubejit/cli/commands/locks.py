"""lock / unlock / locks: keep a user, a group or a grant out, at once (admins; docs/offboarding.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from kubejit.cli import render
from kubejit.cli.client import BrokerClient
from kubejit.cli.options import BrokerOpt, OutputOpt
from kubejit.durations import parse_duration
from kubejit.errors import InvalidInput
from kubejit.local import session

Output = render.Output


def _client(broker: str | None) -> BrokerClient:
    url, current = session.for_broker(broker)
    return BrokerClient(url, token=current.token)


def lock(
    reason: Annotated[str, typer.Option("--reason", help="Why; shown to the locked person and audited.")],
    user: Annotated[str | None, typer.Option("--user", help="Lock this user out.")] = None,
    group: Annotated[str | None, typer.Option("--group", help="Lock every member of this group out.")] = None,
    grant: Annotated[
        str | None, typer.Option("--grant", help="End this grant and refuse its tokens.")
    ] = None,
    duration: Annotated[
        str | None, typer.Option("--for", help="How long, e.g. 1h (default: until `kubejit unlock`).")
    ] = None,
    broker: BrokerOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Lock a user, a group or a grant: refused on every request, open grants ended now.

    Example: kubejit lock --user alice --for 24h --reason "laptop stolen, INC-1234"
    """
    given = {k: v for k, v in {"user": user, "group": group, "grant": grant}.items() if v is not None}
    if len(given) != 1:
        raise InvalidInput(
            "give exactly one of --user, --group or --grant", hint="e.g. `kubejit lock --user alice`."
        )
    if duration is not None:
        parse_duration(duration)  # fail before any network call
    with _client(broker) as client:
        done = client.call("POST", "/v1/locks", json={**given, "reason": reason, "duration": duration})
    if output is Output.json:
        render.as_json("LockCreated", done)
        return
    render.console.print(render.safe(done["message"]))
    show_ended(done)


def unlock(
    lock_id: Annotated[str, typer.Argument(help="The lock id (see `kubejit locks`).")],
    broker: BrokerOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Remove a lock: the principal may authenticate again (ended grants stay ended)."""
    with _client(broker) as client:
        removed = client.call("DELETE", f"/v1/locks/{lock_id}")
    if output is Output.json:
        render.as_json("Lock", removed)
        return
    render.console.print(render.safe(f"Unlocked {removed['kind']} {removed['target']} ({removed['id']})."))


def locks(
    all_locks: Annotated[bool, typer.Option("--all", help="Also unlocked and expired locks.")] = False,
    broker: BrokerOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Locks in force, newest first."""
    with _client(broker) as client:
        found = client.call("GET", "/v1/locks", params={"include_removed": all_locks})
    if output is Output.json:
        render.as_json("LockList", found)
        return
    if not found:
        render.console.print("No locks in force." if not all_locks else "No locks.")
        return
    table = Table(title="Locks", title_justify="left")
    for column in ("ID", "KIND", "TARGET", "REASON", "BY", "CREATED", "UNTIL", "REMOVED"):
        table.add_column(column, no_wrap=column == "ID")
    for lk in found:
        table.add_row(
            lk["id"],
            lk["kind"],
            render.safe(lk["target"]),
            render.safe(lk["reason"]),
            render.safe(lk["created_by"]),
            _at(lk["created_at"]),
            _at(lk["expires_at"]) if lk["expires_at"] else "unlocked by an admin",
            f"{_at(lk['removed_at'])} by {lk['removed_by'] or 'expiry'}" if lk["removed_at"] else "-",
        )
    render.console.print(table)


def _at(value: str) -> str:
    return value[:19].replace("T", " ")


def show_ended(done: dict[str, Any]) -> None:
    """The grants ended now, then what was skipped or left to the reconciler (offboarding, locks)."""
    if done["ended"]:
        render.grants(done["ended"], Output.table, title="Ended")
    if done["skipped"]:
        render.console.print(f"Already ended (skipped): {', '.join(done['skipped'])}")
    if done["cleanup_deferred"]:
        render.console.print(
            f"Cluster cleanup deferred to the reconciler (cluster unreachable): {', '.join(done['cleanup_deferred'])}"
        )


def register(app: typer.Typer) -> None:
    for command in (lock, unlock, locks):
        app.command()(command)
