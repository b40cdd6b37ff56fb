"""kubejit audit status: how far each audit sink has got, read from the broker's store.

It reads the same config file as `kubejit serve` (so it names the same store and sinks) and
needs no running broker: after an outage it tells how much is waiting and when the next try is.
"""

from __future__ import annotations

from pathlib import Path

import click

from kubejit.cli import render
from kubejit.cli.options import output_option, path_type

TYPE_CHECKING = False
if TYPE_CHECKING:  # the store and config load only when the command runs: `kubejit --help` stays fast
    from kubejit.audit.delivery.status import SinkStatus
    from kubejit.config import Settings


def sink_statuses(settings: Settings) -> list[SinkStatus]:
    """One row per configured sink, in config order; a sink the broker never started with is at 0."""
    from kubejit.audit.delivery.status import delivery_status
    from kubejit.clock import SystemClock
    from kubejit.store.audit_access import open_audit_store
    from kubejit.store.audit_cursors import SqlCursorStore

    engine = open_audit_store(settings.store_url)  # never creates a database at a mistyped path
    try:
        sinks = [(s.name, s.required) for s in settings.audit.sinks]
        # Notification channels deliver the same way (docs/notifications.md), under their cursor's name.
        sinks += [(f"notify:{c.name}", False) for c in settings.notifications.channels]
        return delivery_status(SqlCursorStore(engine), sinks, now=SystemClock().now())
    finally:
        engine.dispose()


@click.option(
    "--config",
    "-f",
    required=True,
    type=path_type(),
    envvar="KUBEJIT_CONFIG",
    show_envvar=True,
    help="The broker's YAML config file.",
)
@output_option
def status(config: Path, output: render.Output = render.Output.table) -> None:
    """Per audit sink and notification channel: delivered seq, lag (events and seconds), last error and
    next retry."""
    from kubejit.config import load_settings

    rows = sink_statuses(load_settings(config))
    if output is render.Output.json:
        render.as_json("AuditSinkStatusList", [r.to_dict() for r in rows])
        return
    if not rows:
        render.say("No audit sinks are configured (audit.sinks in the config).")
        return
    from rich.table import Table

    table = Table(title="Audit delivery", title_justify="left")
    for column in ("SINK", "DELIVERED", "LAG", "LAG AGE", "ATTEMPTS", "NEXT RETRY", "LAST ERROR"):
        table.add_column(column)
    for r in rows:
        style = "green" if r.lag_events == 0 else ("red" if r.attempts else "yellow")
        name = r.sink + (" (required)" if r.required else "")
        table.add_row(
            render.safe(name),
            str(r.delivered_seq),
            f"[{style}]{r.lag_events}[/]",
            f"{r.lag_seconds:.1f}s",
            str(r.attempts),
            render._when(r.next_attempt_at.isoformat()) if r.next_attempt_at else "-",
            render.safe(r.last_error or "-"),
        )
    render.console.print(table)
