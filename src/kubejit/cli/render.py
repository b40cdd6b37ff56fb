"""One place that prints results: Rich tables for people, a versioned JSON envelope for scripts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

console = Console(highlight=False)


class Output(StrEnum):
    table = "table"
    json = "json"


def as_json(kind: str, data: Any) -> None:
    print(json.dumps({"apiVersion": "kubejit.io/v1", "kind": kind, "data": data}, indent=2, default=str))


def _when(value: str | None) -> str:
    if not value:
        return "-"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = int((moment - datetime.now(UTC)).total_seconds())
    rel = f"in {_span(delta)}" if delta >= 0 else f"{_span(-delta)} ago"
    return f"{moment.astimezone(UTC):%H:%M:%S}Z ({rel})"


def _span(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60}m"


STATE_STYLE = {"active": "green", "pending": "yellow", "approved": "cyan", "denied": "red", "failed": "red"}


def grants(items: list[dict[str, Any]], output: Output, *, title: str = "Grants") -> None:
    if output is Output.json:
        as_json("GrantList", items)
        return
    if not items:
        console.print(f"{title}: none.")
        return
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    # Ids are typed back (approve, revoke): never cut them; the reason gives way first.
    table.add_column("ID", no_wrap=True, overflow="fold", min_width=13)
    for column in ("STATE", "USER", "CLUSTER"):
        table.add_column(column, overflow="fold")
    table.add_column("NAMESPACE", overflow="fold", min_width=9)
    table.add_column("ROLE", no_wrap=True)
    table.add_column("ENDS", no_wrap=True)  # relative in the table; -o json has the exact time
    table.add_column("REASON", ratio=1)  # wrapped at words (a word too long for it ends in …)
    for g in items:
        ends = g.get("expires_at") if g["state"] == "active" else g.get("pending_until")
        style = STATE_STYLE.get(g["state"], "dim")
        state = g["state"]
        if state == "pending":
            state += f" {len(g['approvals'])}/{g['approvals_required']}"
        table.add_row(
            g["id"],
            f"[{style}]{state}[/]",
            g["requester"],
            g["cluster"],
            ",".join(g["namespaces"]),
            g["role"],
            _when(ends).partition(" (")[2].rstrip(")") if g["state"] in ("active", "pending") else "-",
            (g["reason"] or "")[:40],
        )
    console.print(table)


def grant(g: dict[str, Any], output: Output, *, headline: str) -> None:
    if output is Output.json:
        as_json("Grant", g)
        return
    console.print(f"[bold]{headline}[/]")
    console.print(f"  id:         {g['id']}")
    console.print(
        f"  state:      [{STATE_STYLE.get(g['state'], 'dim')}]{g['state']}[/]   (rule: {g['rule']})"
    )
    console.print(f"  access:     {g['role']} in {', '.join(g['namespaces'])} on cluster {g['cluster']}")
    if g["state"] == "active":
        console.print(f"  expires:    {_when(g['expires_at'])}")
    elif g["state"] == "pending":
        console.print(
            f"  approvals:  {len(g['approvals'])}/{g['approvals_required']} from "
            f"{', '.join(g['approver_groups'])}; decide by {_when(g['pending_until'])}"
        )
    if g.get("end_reason"):
        console.print(f"  ended:      {g['end_reason']} (by {g.get('ended_by') or 'kubejit'})")
