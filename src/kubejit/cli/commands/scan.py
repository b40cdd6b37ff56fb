"""kubejit scan / who-can: see standing privilege in a cluster, straight from a kubeconfig context.

Thin commands: validate the flags, read the cluster once (``clusters.scan.fetch``, behind a spinner),
hand the snapshot to the pure scanner, render. The scanner modules are imported inside the commands so
that every other `kubejit` command starts without loading lightkube. Values read from the cluster are
printed as Rich ``Text``, never as markup: a binding named ``[red]x`` is shown as it is.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from contextlib import redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kubejit.cli import render
from kubejit.cli.declare import command
from kubejit.cli.options import output_option, path_type
from kubejit.clock import SystemClock
from kubejit.errors import InvalidInput

if TYPE_CHECKING:
    from kubejit.clusters.scan.findings import ScanReport, Severity
    from kubejit.clusters.scan.model import Binding, ObjectRef, Snapshot
    from kubejit.clusters.scan.rbac import Access, Matrix, RbacIndex, ResourceRequest
    from kubejit.clusters.scan.resources import ResourceName

#: Exit code when findings at or above --fail-on exist (scan errors keep their own codes, 1-10 and 78).
FINDINGS_EXIT_CODE = 20
SCAN_OUTPUTS = ("table", "json", "sarif", "html")
SEVERITIES = ("high", "medium", "low")
_STYLE = {"high": "bold red", "medium": "yellow", "low": "dim"}
_VERB_LETTERS = {
    "get": "G",
    "list": "L",
    "watch": "W",
    "create": "C",
    "update": "U",
    "patch": "P",
    "delete": "D",
}

context_option = click.option("--context", help="kubeconfig context to scan (default: the current one).")
kubeconfig_option = click.option(
    "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)."
)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value not in allowed:
        raise InvalidInput(
            f"{option} must be one of {', '.join(allowed)}, not {value!r}",
            hint=f"For example: {option} {allowed[0]}.",
        )
    return value


def _read_cluster(kubeconfig: str | None, context: str | None) -> Snapshot:
    from kubejit.clusters.scan import fetch

    config = fetch.load_config(kubeconfig, context)
    read: list[str] = []
    with _err().status(f"Reading RBAC from context {config.context_name!r}…") as status:

        def progress(message: str) -> None:
            read.append(message)
            status.update(f"Reading RBAC from context {config.context_name!r}: {', '.join(read)}")

        return fetch.fetch_snapshot(config, progress=progress)


@command()
@context_option
@kubeconfig_option
@click.option("--output", "-o", default="table", show_default=True, help="table, json, sarif or html.")
@click.option("--out", type=path_type(), help="Write the report to this file.")
@click.option(
    "--fail-on", help=f"Exit {FINDINGS_EXIT_CODE} if a finding is this severe: high, medium or low."
)
@click.option("--managed-namespace", multiple=True, help="A namespace whose access kubejit manages; repeat.")
@click.option("--privileged-namespace", multiple=True, help="Treat as privileged like kube-system; repeat.")
@click.option(
    "--grant-namespace",
    default="kubejit-grants",
    show_default=True,
    help="Where kubejit keeps grant ServiceAccounts (config grantNamespace).",
)
@click.option(
    "--suggest-policy", is_flag=True, help="Print a kubejit policy replacing the standing bindings."
)
def scan(
    context: str | None = None,
    kubeconfig: str | None = None,
    output: str = "table",
    out: Path | None = None,
    fail_on: str | None = None,
    managed_namespace: Sequence[str] = (),
    privileged_namespace: Sequence[str] = (),
    grant_namespace: str = "kubejit-grants",
    suggest_policy: bool = False,
) -> None:
    """Report standing privilege: cluster-admin, wildcards, people's bindings, old tokens, escalation paths.

    Example: kubejit scan --context prod -o html --out scan.html --fail-on high
    """
    from kubejit.clusters.scan.findings import ScanOptions, Severity
    from kubejit.clusters.scan.findings import scan as run_scan

    _choice(output, SCAN_OUTPUTS, "--output")
    threshold = Severity(_choice(fail_on, SEVERITIES, "--fail-on")) if fail_on is not None else None
    if suggest_policy and output != "table":
        raise InvalidInput("--suggest-policy prints policy YAML; it takes no --output", hint="Drop -o.")
    if out is not None and output == "table" and not suggest_policy:
        raise InvalidInput("--out needs -o json, sarif or html", hint="For example: -o html --out scan.html.")
    options = ScanOptions(
        managed_namespaces=frozenset(managed_namespace),
        privileged_namespaces=frozenset({"kube-system", *privileged_namespace}),
        grant_namespace=grant_namespace,
    )
    snapshot = _read_cluster(kubeconfig, context)
    now = SystemClock().now()
    report = run_scan(snapshot, now=now, options=options)
    if suggest_policy:
        from kubejit.clusters.bootstrap import BROKER_NAMESPACE
        from kubejit.clusters.scan.suggest import suggest_policy as draft

        reserved = frozenset({BROKER_NAMESPACE, grant_namespace})
        _emit(draft(snapshot, cluster=snapshot.cluster, generated_at=now, reserved_namespaces=reserved), out)
    else:
        _emit_report(report, output, out)
    _gate(report, threshold)


def _emit_report(report: ScanReport, output: str, out: Path | None) -> None:
    from kubejit.clusters.scan.html import html_report
    from kubejit.clusters.scan.report import report_data, sarif

    if output == "table":
        _print_findings(report)
    elif output == "json":
        _emit(_captured(lambda: render.as_json("ScanReport", report_data(report))), out)
    elif output == "sarif":
        _emit(json.dumps(sarif(report), indent=2) + "\n", out)
    else:
        _emit(html_report(report), out)


def _captured(print_it: Callable[[], None]) -> str:
    """What ``print_it`` prints, so the one JSON envelope renderer also serves --out."""
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        print_it()
    return buffer.getvalue()


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as e:
        raise InvalidInput(
            f"cannot write the report to '{out}': {e.strerror or e}", hint="Choose a writable path for --out."
        ) from e
    _err().print(f"Report written to {out}", markup=False)


def _gate(report: ScanReport, threshold: Severity | None) -> None:
    if threshold is None:
        return
    failing = report.at_or_above(threshold)
    if failing:
        _err().print(f"{len(failing)} finding(s) at or above {threshold.value}", markup=False)
        raise click.exceptions.Exit(FINDINGS_EXIT_CODE)


def _print_findings(report: ScanReport) -> None:
    summary = report.summary()
    counts = ", ".join(f"{n} {severity}" for severity, n in summary.items())
    headline = f"{report.cluster}: {counts} ({sum(report.counts.values())} objects read)"
    if not report.findings:
        render.console.print(
            Text(f"{headline}. No standing privilege found beyond Kubernetes' defaults."), soft_wrap=True
        )
        return
    table = Table(title=Text(headline), title_justify="left")
    for column in ("SEVERITY", "RULE", "OBJECT", "FINDING"):
        table.add_column(column, overflow="fold")
    for finding in report.findings:
        severity = finding.severity.value
        obj = Text(str(finding.object))
        obj.append(f"\n{finding.object.path}", style="dim")
        table.add_row(Text(severity, style=_STYLE[severity]), Text(finding.rule), obj, Text(finding.message))
    render.console.print(table)


@command("who-can")
@click.argument("verb", required=False)
@click.argument("resource", required=False)
@click.option("--namespace", "-n", help="Namespace (default: cluster-wide only).")
@click.option(
    "--matrix", "show_matrix", is_flag=True, help="Subjects by resources and verbs in the namespace instead."
)
@click.option(
    "--resource", "columns", multiple=True, help="A --matrix column; repeat (default: a useful set)."
)
@click.option("--include-defaults", is_flag=True, help="--matrix: also show Kubernetes' own bindings.")
@context_option
@kubeconfig_option
@output_option
def who_can(
    verb: str | None = None,
    resource: str | None = None,
    namespace: str | None = None,
    show_matrix: bool = False,
    columns: Sequence[str] = (),
    include_defaults: bool = False,
    context: str | None = None,
    kubeconfig: str | None = None,
    output: render.Output = render.Output.table,
) -> None:
    """Who may do VERB on RESOURCE, and through which binding; or, with --matrix, what everyone may do.

    Examples: kubejit who-can create pods -n kube-system; kubejit who-can --matrix -n payments
    VERB: get, list, create, delete, bind, ...  RESOURCE: pods, secrets, deployments.apps, pods/exec,
    widgets.example.com
    """
    from kubejit.clusters.scan.rbac import MATRIX_RESOURCES, RbacIndex, ResourceRequest
    from kubejit.clusters.scan.resources import parse_resource

    if show_matrix and (verb or resource):
        raise InvalidInput("--matrix takes no VERB or RESOURCE", hint="Choose columns with --resource.")
    if not show_matrix and not (verb and resource):
        raise InvalidInput(
            "who-can needs a VERB and a RESOURCE", hint="For example: kubejit who-can get secrets -n default"
        )
    if (columns or include_defaults) and not show_matrix:
        raise InvalidInput(
            "--resource and --include-defaults are --matrix options", hint="Add --matrix, or drop them."
        )
    if verb and resource:
        request = ResourceRequest(verb.strip().lower(), parse_resource(resource), namespace or "")
        _answer_who_can(RbacIndex(_read_cluster(kubeconfig, context)), request, output)
        return
    wanted = [parse_resource(r) for r in (columns or MATRIX_RESOURCES)]
    index = RbacIndex(_read_cluster(kubeconfig, context))
    _answer_matrix(index, namespace or "", wanted, include_defaults=include_defaults, output=output)


def _answer_who_can(index: RbacIndex, request: ResourceRequest, output: render.Output) -> None:
    from kubejit.clusters.scan.defaults import is_default_binding
    from kubejit.clusters.scan.rbac import who_can as find
    from kubejit.clusters.scan.report import who_can_data

    found = find(index, request)
    defaults = frozenset(
        a.binding for a in found if is_default_binding(b := index.bindings[a.binding], index.rules_for(b))
    )
    cluster = index.snapshot.cluster
    if output is render.Output.json:
        render.as_json("WhoCan", who_can_data(cluster, request, found, defaults=defaults))
    else:
        _print_who_can(cluster, request, found, defaults)


def _answer_matrix(
    index: RbacIndex,
    namespace: str,
    wanted: list[ResourceName],
    *,
    include_defaults: bool,
    output: render.Output,
) -> None:
    from kubejit.clusters.scan.defaults import is_default_binding
    from kubejit.clusters.scan.rbac import matrix
    from kubejit.clusters.scan.report import matrix_data

    def skip(binding: Binding) -> bool:
        return not include_defaults and is_default_binding(binding, index.rules_for(binding))

    table = matrix(index, namespace, resources=wanted, skip=skip)
    if output is render.Output.json:
        render.as_json("AccessMatrix", matrix_data(index.snapshot.cluster, table))
    else:
        _print_matrix(index.snapshot.cluster, table, include_defaults=include_defaults)


def _where(namespace: str) -> str:
    return f"in namespace {namespace}" if namespace else "cluster-wide"


def _print_who_can(
    cluster: str, request: ResourceRequest, found: list[Access], defaults: frozenset[ObjectRef]
) -> None:
    title = f"Who can {request.verb} {request.resource} {_where(request.namespace)} on {cluster}"
    if not found:
        render.console.print(Text(f"{title}: nobody through RBAC bindings."), soft_wrap=True)
        return
    table = Table(title=Text(title), title_justify="left", caption="dim: a default binding of Kubernetes")
    for column in ("SUBJECT", "THROUGH", "ROLE"):
        table.add_column(column, overflow="fold")
    for access in found:
        style = "dim" if access.binding in defaults else ""
        table.add_row(*(Text(str(v), style=style) for v in (access.subject, access.binding, access.role)))
    render.console.print(table)


def _print_matrix(cluster: str, table: Matrix, *, include_defaults: bool) -> None:
    title = f"Access {_where(table.namespace)} on {cluster}"
    if not include_defaults:
        title += " (without Kubernetes' own bindings: --include-defaults)"
    if not table.cells:
        render.console.print(Text(f"{title}: nobody holds any of these permissions."), soft_wrap=True)
        return
    grid = Table(title=Text(title), title_justify="left")
    grid.add_column("SUBJECT", overflow="fold", min_width=20)
    for resource in table.resources:
        header = f"{resource.resource}/{resource.subresource}" if resource.subresource else resource.resource
        grid.add_column(Text(header), overflow="fold")
    for subject, row in table.cells.items():
        cells = [
            "".join(_VERB_LETTERS.get(v, v) for v in row.get(str(r), ())) or "-" for r in table.resources
        ]
        grid.add_row(Text(str(subject)), *(Text(c) for c in cells))
    render.console.print(grid)
    legend = ", ".join(f"{letter}={verb}" for verb, letter in _VERB_LETTERS.items())
    render.console.print(Text(legend, style="dim"))
