"""One place that prints results: Rich tables for people, a versioned JSON envelope for scripts.

Nearly everything printed comes from the broker or the identity provider (names, reasons, end
reasons, problem details), i.e. from other people. So it never reaches a terminal as markup or as
escape sequences: ``safe()`` escapes Rich markup and shows control characters as ``\\xNN`` where a
value is put into a markup string, and ``InertConsole`` replaces any control character still left in
what it renders, whatever the renderable (a ``Text``, a table cell, ``markup=False``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:
    from rich.console import Console

    class InertConsole(Console):
        """A Console whose output holds no control character but its own styles and newlines."""

    console: InertConsole

# Rich is imported when something is rendered (``console``, ``InertConsole``, ``safe``, a table):
# `-o json` and the error-free paths that print nothing need not pay its ~40 ms of start-up.

#: C0 (ESC, BEL, CR, newline ...), DEL and C1 control characters, and the bidirectional controls that
#: would reorder what the terminal shows (U+061C, U+200E/F, U+202A-E, U+2066-9).
_BIDI = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(rf"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_CONTROL_BUT_NEWLINE = re.compile(rf"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI}]")


def printable(value: object) -> str:
    """``value`` as one line of inert text: each control character shown as ``\\xNN`` or ``\\uNNNN``."""
    return _CONTROL.sub(_shown, str(value))


def _shown(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(value: object) -> str:
    """``value`` for a Rich markup string: printed literally (``[/x]``, ``[link=...]`` included)."""
    from rich.markup import escape

    return escape(printable(value))


def _inert_console_class() -> type[Console]:
    from rich.console import Console, ConsoleOptions, RenderableType
    from rich.segment import Segment

    class InertConsole(Console):
        """A Console whose output holds no control character but its own styles and newlines."""

        def render(
            self, renderable: RenderableType, options: ConsoleOptions | None = None
        ) -> Iterable[Segment]:
            for segment in super().render(renderable, options):
                if segment.control is None and _CONTROL_BUT_NEWLINE.search(segment.text):
                    segment = Segment(_CONTROL_BUT_NEWLINE.sub("?", segment.text), segment.style)
                yield segment

    return InertConsole


def __getattr__(name: str) -> object:
    """``InertConsole`` and the shared ``console``, made when first used (PEP 562), then kept."""
    if name == "InertConsole":
        globals()[name] = _inert_console_class()
    elif name == "console":
        globals()[name] = _inert_console_class()(highlight=False)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return globals()[name]


def _console() -> Console:
    """The shared console, from inside this module (where ``__getattr__`` is not asked)."""
    shared = globals().get("console")
    if shared is None:
        shared = __getattr__("console")
    return cast("Console", shared)


def _styled(stream: TextIO) -> bool:
    """kubejit's own styles on a terminal only; NO_COLOR and FORCE_COLOR decide first (as for Rich)."""
    import os

    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def styled(text: str, sgr: str, stream: TextIO | None = None) -> str:
    """``text`` (already inert: see ``printable``) in the SGR style ``sgr`` (``1`` bold, ``1;31`` bold
    red) when ``stream`` (stdout by default) is a terminal."""
    import sys

    return f"\x1b[{sgr}m{text}\x1b[0m" if _styled(stream or sys.stdout) else text


def bold(text: str) -> str:
    """``text`` (already inert) in bold on a terminal."""
    return styled(text, "1")


def say(line: str) -> None:
    """One line of plain output, without Rich (its start-up is for tables): ``line`` must already be
    inert, i.e. any text from elsewhere in it passed through ``printable``."""
    print(line)


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
        say(f"{printable(title)}: none.")
        return
    from rich import box
    from rich.table import Table

    console = _console()
    table = Table(title=safe(title), title_justify="left", box=box.SIMPLE_HEAD)
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
        state = safe(g["state"])
        if g["state"] == "pending":
            state += f" {len(g['approvals'])}/{g['approvals_required']}"
        table.add_row(
            safe(g["id"]),
            f"[{style}]{state}[/]",
            safe(g["requester"]),
            safe(g["cluster"]),
            safe(",".join(g["namespaces"]) or "(cluster-wide)"),
            safe(g["role"]),
            _when(ends).partition(" (")[2].rstrip(")") if g["state"] in ("active", "pending") else "-",
            safe((g["reason"] or "")[:40]),
        )
    console.print(table)


def grant(g: dict[str, Any], output: Output, *, headline: str) -> None:
    if output is Output.json:
        as_json("Grant", g)
        return
    console = _console()
    console.print(f"[bold]{safe(headline)}[/]")
    console.print(f"  id:         {safe(g['id'])}")
    console.print(
        f"  state:      [{STATE_STYLE.get(g['state'], 'dim')}]{safe(g['state'])}[/]   (rule: {safe(g['rule'])})"
    )
    where = ", ".join(g["namespaces"]) or "all namespaces (cluster-wide)"
    console.print(f"  access:     {safe(g['role'])} in {safe(where)} on cluster {safe(g['cluster'])}")
    if g["state"] == "active":
        console.print(f"  expires:    {_when(g['expires_at'])}")
    elif g["state"] == "pending":
        console.print(
            f"  approvals:  {len(g['approvals'])}/{g['approvals_required']} from "
            f"{safe(', '.join(g['approver_groups']))}; decide by {_when(g['pending_until'])}"
        )
    if g.get("end_reason"):
        console.print(f"  ended:      {safe(g['end_reason'])} (by {safe(g.get('ended_by') or 'kubejit')})")
