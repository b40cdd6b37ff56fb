"""reviews / review: the post-incident review of break-glass grants, as thin calls to the broker."""

from __future__ import annotations

from typing import Any

import click

from kubejit.cli import render
from kubejit.cli.client import BrokerClient
from kubejit.cli.declare import command
from kubejit.cli.grant_ref import grant_id as checked_id
from kubejit.cli.options import broker_option, output_option
from kubejit.local import session

Output = render.Output


def _client(broker: str | None) -> BrokerClient:
    url, current = session.for_broker(broker)  # the login's token goes to its own broker only
    return BrokerClient(url, token=current.token)


@command()
@broker_option
@output_option
def reviews(broker: str | None = None, output: Output = Output.table) -> None:
    """Break-glass grants still waiting for their post-incident review that you may record (admins: all)."""
    with _client(broker) as client:
        items = client.call("GET", "/v1/reviews")
    if output is Output.json:
        render.as_json("ReviewList", items)
        return
    show_reviews(items)


@command()
@click.argument("grant_id")
@click.option(
    "--comment", required=True, help="What you checked and found; required, one line, at most 1000."
)
@broker_option
@output_option
def review(grant_id: str, comment: str, broker: str | None = None, output: Output = Output.table) -> None:
    """Record the post-incident review of a break-glass grant (admins and its reviewers; never its holder).

    Example: kubejit review g1a2b3c4d5e6 --comment "INC-42 rollback; API audit log matches"

    GRANT_ID: the break-glass grant (see `kubejit reviews`).
    """
    from kubejit.grants.reviews import check_comment

    gid = checked_id(grant_id)
    check_comment(comment)  # refused here, before any network call, with the broker's own words
    with _client(broker) as client:
        grant = client.call("POST", f"/v1/grants/{gid}/review", json={"comment": comment})
    render.grant(grant, output, headline="Review recorded.")
    if output is Output.table and grant.get("review"):
        done = grant["review"]
        render.console.print(
            f"  reviewed:   by {render.safe(done['reviewer'])}: {render.safe(done['comment'])}"
        )


def show_reviews(items: list[dict[str, Any]]) -> None:
    from rich import box
    from rich.table import Table

    if not items:
        render.say("Open break-glass reviews: none.")
        return
    table = Table(title="Open break-glass reviews", title_justify="left", box=box.SIMPLE_HEAD)
    # Ids are typed back (`kubejit review ID`): never cut; the reason gives way first.
    table.add_column("ID", no_wrap=True, min_width=13)
    for column in ("USER", "ACCESS", "USED AT", "REVIEWERS"):
        table.add_column(column, overflow="fold")
    table.add_column("REASON", ratio=1, overflow="fold")
    for g in items:
        where = ",".join(g["namespaces"]) or "(cluster-wide)"
        table.add_row(
            render.safe(g["id"]),
            render.safe(g["requester"]),
            render.safe(f"{g['role']} in {where} on {g['cluster']} ({g['state']})"),
            render.safe((g.get("activated_at") or "-")[:16].replace("T", " ")),
            render.safe(", ".join(g.get("reviewer_groups") or []) or "admins"),
            render.safe((g["reason"] or "")[:60]),
        )
    render.console.print(table)
    render.console.print('Record one with: kubejit review ID --comment "what you checked"')
