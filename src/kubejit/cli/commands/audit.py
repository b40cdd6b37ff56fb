"""kubejit audit: verify, search, correlate, who — read straight from the broker's store.

These commands open the store themselves (``--config`` or ``--store-url``), read only, instead of
asking the broker's API: verification must work when the broker is down or compromised, and
streaming a million rows from the database is faster than paging them through HTTP. See
docs/audit.md.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from kubejit.audit.access_history import GRANT_ACTIONS, GrantRecord, grant_records, who_had_access
from kubejit.audit.event import StoredEvent, rfc3339
from kubejit.audit.k8s_correlation import (
    Correlated,
    GrantIndex,
    MalformedAuditLine,
    correlate,
    parse_audit_log,
)
from kubejit.audit.ocsf import to_ocsf
from kubejit.cli import render
from kubejit.cli.commands import audit_delivery
from kubejit.cli.declare import command, group
from kubejit.cli.options import output_option, path_type
from kubejit.cli.render import Output
from kubejit.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from kubejit.audit.checkpoint import ExpectedHead

app = group(
    "audit", help="The tamper-evident audit log: verify it, search it, join it to the API server's audit log."
)
command(group=app)(audit_delivery.status)  # delivery to sinks: docs/audit-delivery.md

#: Parallel hashing pays off only with cores to spare: one process on a 2-CPU machine.
DEFAULT_JOBS = 1 if (os.cpu_count() or 1) <= 2 else min(4, os.cpu_count() or 1)

#: `verify` found the log edited, cut or reordered (sysexits EX_DATAERR).
EXIT_TAMPERED = 65

config_option = click.option(
    "--config",
    "-f",
    type=path_type(),
    envvar="KUBEJIT_CONFIG",
    show_envvar=True,
    help="The broker's config (names the store).",
)
store_url_option = click.option(
    "--store-url", envvar="KUBEJIT_STORE_URL", show_envvar=True, help="The store's URL (instead of --config)."
)


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    ocsf = "ocsf"


@dataclass(frozen=True)
class StoreTarget:
    url: str
    checkpoint_key: Path | None = None
    grant_namespace: str | None = None
    #: The broker's ``audit.checkpointIntervalSeconds`` (None: not known, the default applies).
    checkpoint_interval_seconds: float | None = None


def _target(config: Path | None, store_url: str | None) -> StoreTarget:
    if store_url:
        return StoreTarget(store_url)
    if config is None:
        raise InvalidInput(
            "which store? pass the broker's config or its store URL",
            hint="kubejit audit verify --config /etc/kubejit/config.yaml (or --store-url URL).",
        )
    from kubejit.config import load_settings

    settings = load_settings(config)
    return StoreTarget(
        settings.store_url,
        settings.checkpoint_key_path,
        settings.grant_namespace,
        settings.audit.checkpoint_interval_seconds,
    )


def _engine(target: StoreTarget) -> Any:
    from kubejit.store.audit_access import open_audit_store

    return open_audit_store(target.url)


# -- verify ----------------------------------------------------------------------------------------
@command(group=app)
@config_option
@store_url_option
@click.option(
    "--public-key",
    multiple=True,
    type=path_type(),
    help="Checkpoint public key (PEM); repeat for rotated keys. Default: the config's key file.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=DEFAULT_JOBS,
    show_default=True,
    help="Processes hashing in parallel, for logs over 200,000 events.",
)
@click.option(
    "--expect-head",
    metavar="SEQ[:HASH]",
    help="A head recorded earlier (an OK line's 'head seq N hash H' as N:H): fail if the log is behind it.",
)
@output_option
def verify(
    config: Path | None = None,
    store_url: str | None = None,
    public_key: Sequence[Path] = (),
    jobs: int = DEFAULT_JOBS,
    expect_head: str | None = None,
    output: Output = Output.table,
) -> None:
    """Check every event's hash and link, and every signed checkpoint; exit 65 on any finding.

    Finds an edited, deleted or reordered event (naming the first bad seq) and a cut tail (the log
    ends before a signed checkpoint, or before --expect-head). Warns when the newest checkpoint is
    older than 5 checkpoint intervals. Example: kubejit audit verify --config config.yaml
    """
    from kubejit.audit.checkpoint import load_public_key
    from kubejit.store.audit_verify import DEFAULT_CHECKPOINT_INTERVAL, verify_log

    expected = parse_expected_head(expect_head) if expect_head is not None else None
    target = _target(config, store_url)
    keys = [load_public_key(p) for p in public_key]
    if not keys and target.checkpoint_key is not None and target.checkpoint_key.exists():
        try:
            keys = [load_public_key(target.checkpoint_key)]
        except ConfigError as exc:  # an auditor may read the store but not the broker's key
            click.echo(f"warning: {exc.message}; pass --public-key", err=True)
    engine = _engine(target)
    try:
        interval = DEFAULT_CHECKPOINT_INTERVAL
        if target.checkpoint_interval_seconds is not None:
            interval = timedelta(seconds=target.checkpoint_interval_seconds)
        verdict = verify_log(
            engine,
            public_keys=keys or None,
            jobs=jobs,
            now=datetime.now(UTC),
            checkpoint_interval=interval,
            expect_head=expected,
        )
    finally:
        engine.dispose()
    if output is Output.json:
        render.as_json("AuditVerification", verdict.to_dict())
    elif verdict.ok:
        render.console.print(
            f"[green]OK[/]: {verdict.checked:,} events, {verdict.checkpoints} signed checkpoints; "
            f"head seq {verdict.last_seq} hash {verdict.head_hash}"
        )
    else:
        render.console.print(
            f"[bold red]TAMPERED[/]: first bad seq {verdict.first_bad_seq}: {render.safe(verdict.message)}"
        )
        render.console.print(f"  events before it are intact (last good seq {verdict.last_seq})")
    if verdict.warning and output is not Output.json:
        render.console.print(f"[yellow]warning[/]: {render.safe(verdict.warning)}")
    if not verdict.ok:
        raise click.exceptions.Exit(EXIT_TAMPERED)


_EXPECTED_HEAD = re.compile(r"([0-9]{1,18})(?::([0-9a-f]{64}))?")


def parse_expected_head(value: str) -> ExpectedHead:
    """``SEQ`` or ``SEQ:HASH`` (the 64 hex digits an OK line prints after 'hash')."""
    from kubejit.audit.checkpoint import ExpectedHead

    found = _EXPECTED_HEAD.fullmatch(value.strip().lower())
    if found is None or int(found.group(1)) < 1:
        raise InvalidInput(
            f"--expect-head: {value[:80]!r} is not SEQ or SEQ:HASH",
            hint="Copy it from an earlier OK line: 'head seq 1234 hash 5c0e...' is 1234:5c0e...",
        )
    return ExpectedHead(int(found.group(1)), found.group(2))


# -- search ----------------------------------------------------------------------------------------
#: ``24h``, ``90d``, ``1h30m``: a look-back, not a grant's length, so not capped at 31 days.
_AGO = re.compile(r"(?:\d{1,9}[smhd])+")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_when(value: str, *, now: datetime, what: str) -> datetime:
    """``24h``/``30m``/``90d`` ago, or an RFC 3339 / ISO 8601 time (UTC when no zone is given)."""
    ago = value.strip().lower()
    if _AGO.fullmatch(ago):
        seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in re.findall(r"(\d+)([smhd])", ago))
        try:
            return now - timedelta(seconds=seconds)
        except OverflowError:
            raise InvalidInput(f"{what}: {value!r} reaches back before year 1") from None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{what}: {value!r} is neither a duration nor a time",
            hint="Use e.g. 24h, 30m, 90d, or 2026-03-01T12:00:00Z.",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _namespaces(event: StoredEvent) -> list[str]:
    found = event.details.get("namespaces")
    return [str(n) for n in found] if isinstance(found, list) else []


@command(group=app)
@config_option
@store_url_option
@click.option("--person", help="Actor or subject, e.g. alice.")
@click.option("--cluster", "-c")
@click.option("--namespace", "-n")
@click.option("--grant", "-g", help="Grant id.")
@click.option("--action", multiple=True, help="e.g. grant.activated; repeatable.")
@click.option("--since", help="24h (ago) or a time.")
@click.option("--until", help="Exclusive; 1h (ago) or a time.")
@click.option(
    "--limit",
    type=int,
    default=100,
    show_default=True,
    help="At most this many events, newest first (0: all).",
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(Format),
    default=Format.table,
    show_default=True,
    help="table, json (lines), csv or ocsf (json lines).",
)
def search(
    config: Path | None = None,
    store_url: str | None = None,
    person: str | None = None,
    cluster: str | None = None,
    namespace: str | None = None,
    grant: str | None = None,
    action: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
    limit: int = 100,
    output: Format = Format.table,
) -> None:
    """Find audit events by person, cluster, namespace, grant and time.

    Example: kubejit audit search -f config.yaml --person alice --since 24h -o csv > alice.csv
    """
    from kubejit.store.audit_log import find

    if limit < 0:
        raise InvalidInput(f"--limit must be 0 or more, not {limit}")
    now = datetime.now(UTC)
    start = parse_when(since, now=now, what="--since") if since else None
    end = parse_when(until, now=now, what="--until") if until else None
    engine = _engine(_target(config, store_url))
    try:
        found = find(
            engine,
            person=person,
            cluster=cluster,
            grant_id=grant,
            actions=tuple(action),
            since=start,
            until=end,
        )
        if namespace is not None:
            found = (
                e for e in found if namespace in _namespaces(e) or e.details.get("namespace") == namespace
            )
        events = _first(found, limit)
        _print_events(events, output)
    finally:
        engine.dispose()


def _first(events: Iterable[StoredEvent], limit: int) -> Iterator[StoredEvent]:
    for n, event in enumerate(events):
        if limit and n >= limit:
            return
        yield event


CSV_COLUMNS = (
    "seq", "at", "action", "outcome", "actor", "subject", "grant_id", "cluster", "namespaces", "role",
    "reason", "ticket", "approvers", "source_ip", "user_agent", "event_id", "details",
)  # fmt: skip


def csv_row(event: StoredEvent) -> list[str]:
    """One CSV line; cells a spreadsheet would run as a formula (typed reasons!) get a leading quote."""
    d = event.details
    return [_inert(cell) for cell in _csv_cells(event, d)]


def _inert(cell: str) -> str:
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _csv_cells(event: StoredEvent, d: dict[str, Any]) -> list[str]:
    return [
        str(event.seq), rfc3339(event.at), event.action, event.outcome, event.actor, event.subject or "",
        event.grant_id or "", event.cluster or "", " ".join(_namespaces(event)), str(d.get("role") or ""),
        str(d.get("reason") or ""), str(d.get("ticket") or ""), " ".join(map(str, d.get("approvers") or [])),
        str(d.get("source_ip") or ""), str(d.get("user_agent") or ""), event.event_id,
        json.dumps(d, sort_keys=True, default=str),
    ]  # fmt: skip


def _print_events(events: Iterator[StoredEvent], output: Format) -> None:
    if output is Format.json or output is Format.ocsf:
        encode = to_ocsf if output is Format.ocsf else StoredEvent.to_dict
        for event in events:
            sys.stdout.write(json.dumps(encode(event), sort_keys=True) + "\n")
        return
    if output is Format.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_row(e) for e in events)
        return
    table = Table(title="Audit events (newest first)", title_justify="left")
    for column in ("SEQ", "AT", "ACTION", "OUTCOME", "ACTOR", "SUBJECT", "GRANT", "CLUSTER", "NAMESPACES"):
        table.add_column(column)
    for e in events:
        table.add_row(
            str(e.seq), rfc3339(e.at)[:19] + "Z", render.safe(e.action), render.safe(e.outcome),
            render.safe(e.actor), render.safe(e.subject or "-"), render.safe(e.grant_id or "-"),
            render.safe(e.cluster or "-"), render.safe(", ".join(_namespaces(e))),
        )  # fmt: skip
    render.console.print(table)


# -- correlate and who -----------------------------------------------------------------------------
def _grant_records(target: StoreTarget, *, cluster: str | None) -> dict[str, GrantRecord]:
    from kubejit.store.audit_log import find

    engine = _engine(target)
    try:
        events = find(engine, cluster=cluster, actions=GRANT_ACTIONS, newest_first=False)
        return grant_records(events)
    finally:
        engine.dispose()


def _requests(paths: list[Path], index: GrantIndex) -> list[Correlated]:
    found: list[Correlated] = []
    for path in paths:
        try:
            with path.open(encoding="utf-8") as lines:
                found.extend(correlate(parse_audit_log(lines), index))
        except OSError as exc:
            raise ConfigError(
                f"cannot read {path}: {exc.strerror or exc}",
                hint="Pass the API server's --audit-log-path file.",
            ) from exc
        except MalformedAuditLine as exc:
            raise InvalidInput(
                f"{path}: {exc}", hint="Pass the API server's JSON audit log (--audit-log-format=json)."
            ) from exc
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"{path} is not UTF-8 text",
                hint="A rotated log compressed by --audit-log-compress: gunzip it first.",
            ) from exc
    return found


@command("correlate", group=app)
@click.option(
    "--k8s-audit-log",
    required=True,
    multiple=True,
    type=path_type(),
    help="The API server's JSON audit log file; repeat for rotated files.",
)
@config_option
@store_url_option
@click.option("--cluster", "-c", help="The cluster this log belongs to.")
@click.option(
    "--output",
    "-o",
    type=click.Choice(Output),
    default=Output.table,
    show_default=True,
    help="table, or json (one request per line).",
)
def correlate_command(
    k8s_audit_log: Sequence[Path],
    config: Path | None = None,
    store_url: str | None = None,
    cluster: str | None = None,
    output: Output = Output.table,
) -> None:
    """Show each request made with a kubejit grant's token: person, grant, reason and approvers.

    Example: kubejit audit correlate -f config.yaml --k8s-audit-log /var/log/kube-apiserver/audit.log
    """
    target = _target(config, store_url)
    records = _grant_records(target, cluster=cluster)
    matched = _requests(
        list(k8s_audit_log), GrantIndex(records.values(), grant_namespace=target.grant_namespace)
    )
    if output is Output.json:
        for item in matched:
            sys.stdout.write(json.dumps(item.to_dict(), sort_keys=True) + "\n")
        return
    table = Table(title=f"{len(matched)} requests made with kubejit grants", title_justify="left")
    for column in ("AT", "PERSON", "GRANT", "VERB", "RESOURCE", "NAMESPACE", "CODE", "REASON", "APPROVERS"):
        table.add_column(column)
    for item in matched:
        r, g = item.request, item.grant
        table.add_row(
            render.safe(r.at), render.safe(g.person), render.safe(g.grant_id), render.safe(r.verb), render.safe(r.resource or r.uri), render.safe(r.namespace or "-"),
            str(r.code or "-"), render.safe(g.reason or "-"), render.safe(", ".join(g.approvers) or "-"),
        )  # fmt: skip
    render.console.print(table)


@command(group=app)
@click.option("--cluster", "-c", required=True)
@click.option("--namespace", "-n", required=True)
@click.option("--since", default="24h", show_default=True, help="24h (ago) or a time.")
@click.option("--until", help="Default: now.")
@click.option(
    "--k8s-audit-log",
    multiple=True,
    type=path_type(),
    help="Add what each did, from the cluster's API server audit log.",
)
@config_option
@store_url_option
@output_option
def who(
    cluster: str,
    namespace: str,
    since: str = "24h",
    until: str | None = None,
    k8s_audit_log: Sequence[Path] = (),
    config: Path | None = None,
    store_url: str | None = None,
    output: Output = Output.table,
) -> None:
    """Who had access to a namespace in a time window, why, approved by whom, and what they did.

    Example: kubejit audit who -f config.yaml -c prod -n payments --since 24h --k8s-audit-log audit.log
    """
    now = datetime.now(UTC)
    start = parse_when(since, now=now, what="--since")
    end = parse_when(until, now=now, what="--until") if until else now + timedelta(seconds=1)
    target = _target(config, store_url)
    records = _grant_records(target, cluster=cluster)
    held = who_had_access(records.values(), cluster=cluster, namespace=namespace, since=start, until=end)
    did: dict[str, Counter[str]] = {g.grant_id: Counter() for g in held}
    if k8s_audit_log:
        index = GrantIndex(held, grant_namespace=target.grant_namespace)
        for item in _requests(list(k8s_audit_log), index):
            r = item.request
            did[item.grant.grant_id][
                f"{r.verb} {r.resource or r.uri}" + (f" ({r.code})" if r.code else "")
            ] += 1
    if output is Output.json:
        data = [{**g.to_dict(), "did": dict(did[g.grant_id])} for g in held]
        render.as_json("AccessHistory", data)
        return
    table = Table(
        title=f"Access to {namespace} on {cluster} since {rfc3339(start)[:19]}Z", title_justify="left"
    )
    for column in ("PERSON", "GRANT", "ROLE", "FROM", "UNTIL", "REASON", "APPROVERS", "DID"):
        table.add_column(column)
    for g in held:
        until_text = rfc3339(g.ended_at)[:19] + "Z" if g.ended_at else "active"
        actions = ", ".join(f"{what} x{n}" for what, n in did[g.grant_id].most_common(5)) or "-"
        table.add_row(
            render.safe(g.person), render.safe(g.grant_id), render.safe(g.role), rfc3339(g.activated_at)[:19] + "Z" if g.activated_at else "-",
            until_text, render.safe(g.reason or "-"), render.safe(", ".join(g.approvers) or "-"), render.safe(actions),
        )  # fmt: skip
    render.console.print(table if held else f"Nobody held access to {namespace} on {cluster} then.")
