"""lock / unlock / locks: keep a user, a group or a grant out, at once (admins; docs/offboarding.md)."""

from __future__ import annotations

from typing import Any

import click

from kubejit.cli import render
from kubejit.cli.client import BrokerClient
from kubejit.cli.declare import command
from kubejit.cli.options import broker_option, output_option
from kubejit.durations import parse_duration
from kubejit.errors import InvalidInput
from kubejit.local import session

Output = render.Output


def _client(broker: str | None) -> BrokerClient:
    url, current = session.for_broker(broker)
    return BrokerClient(url, token=current.token)


@command()
@click.option("--reason", required=True, help="Why; shown to the locked person and audited.")
@click.option("--user", help="Lock this user out.")
@click.option("--group", help="Lock every member of this group out.")
@click.option("--grant", help="End this grant and refuse its tokens.")
@click.option("--for", "duration", help="How long, e.g. 1h (default: until `kubejit unlock`).")
@broker_option
@output_option
def lock(
    reason: str,
    user: str | None = None,
    group: str | None = None,
    grant: str | None = None,
    duration: str | None = None,
    broker: str | None = None,
    output: Output = Output.table,
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
    render.say(render.printable(done["message"]))
    show_ended(done)


@command()
@click.argument("lock_id")
@broker_option
@output_option
def unlock(lock_id: str, broker: str | None = None, output: Output = Output.table) -> None:
    """Remove a lock: the principal may authenticate again (ended grants stay ended).

    LOCK_ID: the lock id (see `kubejit locks`)."""
    with _client(broker) as client:
        removed = client.call("DELETE", f"/v1/locks/{lock_id}")
    if output is Output.json:
        render.as_json("Lock", removed)
        return
    render.say(render.printable(f"Unlocked {removed['kind']} {removed['target']} ({removed['id']})."))


@command()
@click.option("--all", "all_locks", is_flag=True, help="Also unlocked and expired locks.")
@broker_option
@output_option
def locks(all_locks: bool = False, broker: str | None = None, output: Output = Output.table) -> None:
    """Locks in force, newest first."""
    with _client(broker) as client:
        found = client.call("GET", "/v1/locks", params={"include_removed": all_locks})
    if output is Output.json:
        render.as_json("LockList", found)
        return
    if not found:
        render.say("No locks in force." if not all_locks else "No locks.")
        return
    from rich.table import Table

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
