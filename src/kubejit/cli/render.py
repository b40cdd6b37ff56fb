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
from collections.abc import Iterable, Sequence
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


#: Each state's colour (SGR), on a terminal.
STATE_SGR = {"active": "32", "pending": "33", "approved": "36", "denied": "31", "failed": "31"}


def grants(items: list[dict[str, Any]], output: Output, *, title: str = "Grants") -> None:
    """A table in plain lines fitted to the terminal (no Rich to load: lists are the common command)."""
    if output is Output.json:
        as_json("GrantList", items)
        return
    if not items:
        say(f"{printable(title)}: none.")
        return
    rows = []
    for g in items:
        ends = g.get("expires_at") if g["state"] == "active" else g.get("pending_until")
        state = g["state"] + (
            f" {len(g['approvals'])}/{g['approvals_required']}" if g["state"] == "pending" else ""
        )
        rows.append(
            [
                g["id"],
                state,
                g["requester"],
                g["cluster"],
                ",".join(g["namespaces"]) or "(cluster-wide)",
                g["role"],
                _when(ends).partition(" (")[2].rstrip(")") if g["state"] in ("active", "pending") else "-",
                (g["reason"] or "")[:40],
            ]
        )
    say(bold(printable(title)))
    columns = ("ID", "STATE", "USER", "CLUSTER", "NAMESPACE", "ROLE", "ENDS", "REASON")
    for line in table_lines(columns, [[printable(c) for c in r] for r in rows], folding={2, 3, 4}):
        say(line)


def _terminal_columns() -> int:
    """COLUMNS, else the terminal's width, else 100 (as shutil.get_terminal_size, which costs 5 ms to import)."""
    import os
    import sys

    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size((sys.__stdout__ or sys.stdout).fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 100


def table_lines(
    headers: Sequence[str], rows: list[list[str]], *, folding: set[int], width: int | None = None
) -> list[str]:
    """``rows`` (inert text) under ``headers`` in columns two spaces apart, within ``width`` (the
    terminal's): the last column wraps at words (a word too long for it ends in …), the ``folding``
    columns give way next, folded at their width; the others (ids, typed back) are never cut."""
    import textwrap

    total = width or _terminal_columns()
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    minimum = {i: max(len(headers[i]), 6) for i in folding}

    def last_width() -> int:
        return total - sum(widths[:-1]) - 2 * (len(headers) - 1)

    while last_width() < 12 and any(widths[i] > minimum[i] for i in folding):
        widest = max((i for i in folding if widths[i] > minimum[i]), key=lambda i: widths[i])
        widths[widest] -= 1
    widths[-1] = max(8, min(widths[-1], last_width()))

    def cell(i: int, text: str) -> list[str]:
        w = widths[i]
        if i == len(headers) - 1:
            words = [word if len(word) <= w else word[: w - 1] + "…" for word in text.split()]
            return textwrap.wrap(" ".join(words), w, break_long_words=False) or [""]
        if i in folding:
            return [text[k : k + w] for k in range(0, len(text), w)] or [""]
        return [text]

    lines = []
    for row in [list(headers), *rows]:
        cells = [cell(i, text) for i, text in enumerate(row)]
        for k in range(max(len(c) for c in cells)):
            parts = [(c[k] if k < len(c) else "").ljust(widths[i]) for i, c in enumerate(cells)]
            lines.append("  ".join(parts).rstrip())
    return lines


def grant(g: dict[str, Any], output: Output, *, headline: str) -> None:
    """One grant's summary (request, approve, deny, revoke, extend), in plain lines: no Rich to load."""
    if output is Output.json:
        as_json("Grant", g)
        return
    state = styled(printable(g["state"]), STATE_SGR.get(g["state"], "2"))
    say(bold(printable(headline)))
    say(f"  id:         {printable(g['id'])}")
    say(f"  state:      {state}   (rule: {printable(g['rule'])})")
    where = ", ".join(g["namespaces"]) or "all namespaces (cluster-wide)"
    say(f"  access:     {printable(g['role'])} in {printable(where)} on cluster {printable(g['cluster'])}")
    if g["state"] == "active":
        say(f"  expires:    {_when(g['expires_at'])}")
    elif g["state"] == "pending":
        say(
            f"  approvals:  {len(g['approvals'])}/{g['approvals_required']} from "
            f"{printable(', '.join(g['approver_groups']))}; decide by {_when(g['pending_until'])}"
        )
    if g.get("end_reason"):
        say(f"  ended:      {printable(g['end_reason'])} (by {printable(g.get('ended_by') or 'kubejit')})")
