"""kubejit kubeconfig: one context per active grant, whose user runs `kubejit token` (no token in it).

Thin: asks the broker for the grants and where their clusters are, then hands the merge to
``kubejit.kubeconfig_file`` (pure) and writes the file under a lock.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from kubejit import kubeconfig_file as kf
from kubejit.cli import render
from kubejit.cli.client import BrokerClient
from kubejit.cli.declare import command
from kubejit.cli.options import broker_option
from kubejit.errors import InvalidInput, NotFound
from kubejit.local import session


@dataclass(frozen=True)
class KubeconfigResult:
    path: str
    merge: kf.MergeResult
    unknown: list[str]
    switched_to: str | None


@command()
@click.option("--grant", "-g", help="Only this grant (default: all your active grants).")
@click.option("--all", "all_grants", is_flag=True, help="Every active grant of yours (the default).")
@click.option(
    "--file", "-f", help="Kubeconfig to merge into (default: first of $KUBECONFIG, ~/.kube/config)."
)
@click.option("--use", is_flag=True, help="Switch kubectl to the (newest) written context.")
@click.option("--prune", is_flag=True, help="Remove contexts of grants that have ended.")
@broker_option
def kubeconfig(
    grant: str | None = None,
    all_grants: bool = False,
    file: str | None = None,
    use: bool = False,
    prune: bool = False,
    broker: str | None = None,
) -> None:
    """Write kubectl contexts for your active grants (kubectl then gets tokens from `kubejit token`).

    Example: kubejit kubeconfig --grant g1a2b3c4d5e6 --use && kubectl get pods
    """
    if grant and all_grants:
        raise InvalidInput(
            "give --grant or --all, not both", hint="Without either, all active grants are written."
        )
    url, current = session.for_broker(broker)
    with BrokerClient(url, token=current.token) as client:
        result = write_contexts(client, url, grant_id=grant, path=file, use=use, prune=prune)
    show(result)


def write_contexts(
    client: BrokerClient,
    broker: str,
    *,
    grant_id: str | None,
    path: str | None,
    use: bool,
    prune: bool,
) -> KubeconfigResult:
    """Merge the contexts of one grant (or all active ones) into the kubeconfig; used by `request --use`."""
    active = client.call("GET", "/v1/grants", params={"scope": "mine", "state": ["active"]})
    chosen = [g for g in active if grant_id is None or g["id"] == grant_id]
    if grant_id is not None and not chosen:
        raise _not_active(client, grant_id)
    clusters = {c["name"]: c for c in client.call("GET", "/v1/clusters")}
    planned = kf.plan_contexts(chosen, clusters, broker=broker, command=kubejit_command())
    target = path or kf.default_path()
    with kf.KubeconfigLock(target):
        config = kf.read_kubeconfig(target)
        ended = _ended_grants(config, active, broker) if prune else set()
        switch = planned[0].context if use and planned else None
        merged = kf.merge(config, contexts=planned, remove_grants=ended, use=switch)
        if merged.text != config.text:
            kf.write_kubeconfig(target, merged.text)
    return KubeconfigResult(target, merged, config.unknown, switch)


def _ended_grants(config: kf.Kubeconfig, active: list[dict[str, Any]], broker: str) -> set[str]:
    """Grants of this broker with a context in the file that are no longer active."""
    live = {g["id"] for g in active}
    users = {e.name: e.value for e in config.entries["users"]}
    return {
        grant
        for name, grant in config.owned_users().items()
        if grant not in live and (kf.broker_of(users[name]) or broker).rstrip("/") == broker.rstrip("/")
    }


def _not_active(client: BrokerClient, grant_id: str) -> NotFound:
    from kubejit.exec.refresh import request_command

    grant = client.call("GET", f"/v1/grants/{grant_id}")
    if grant["state"] in ("pending", "approved"):
        hint = f"Once it is approved run `kubejit kubeconfig --grant {grant_id}` (`kubejit grants` shows it)."
    else:
        hint = f"To get access again run: {request_command(grant)}"
    return NotFound(f"grant {grant_id} is {grant['state']}, not active: no context written", hint=hint)


def kubejit_command() -> str:
    """The kubejit beside this Python (same installation), else the one on PATH."""
    beside = Path(sys.executable).with_name("kubejit")
    if beside.is_file():
        return str(beside)
    return shutil.which("kubejit") or "kubejit"


def show(result: KubeconfigResult) -> None:
    say, bold, text = render.say, render.bold, render.printable
    merged = result.merge
    path = text(result.path)
    for name in merged.added:
        say(f"Added context {bold(text(name))} to {path}.")
    for name in merged.updated:
        say(f"Context {bold(text(name))} in {path} is up to date.")
    for name in merged.removed:
        say(f"Removed context {text(name)} (its grant has ended).")
    if not (merged.added or merged.updated or merged.removed):
        say("No active grants: nothing to write. `kubejit request ...` asks for access.")
    if result.switched_to:
        say(f"kubectl now uses context {bold(text(result.switched_to))}.")
    if result.unknown:
        note = f"Note: {result.path} has fields kubectl ignores; kubejit kept them as they are: "
        sys.stderr.write(text(note + ", ".join(result.unknown)) + "\n")


@command()
@click.option("--grant", required=True, help="The grant whose token kubectl needs.")
@click.option("--broker", help="The broker that holds the grant.")
def token(grant: str, broker: str | None = None) -> None:
    """kubectl's exec credential plugin (written into contexts by `kubejit kubeconfig`); prints an
    ExecCredential. `kubejit token` normally runs without loading this CLI (see kubejit.exec.plugin)."""
    from kubejit.exec.plugin import main as serve_token

    args = ["--grant", grant] + (["--broker", broker] if broker else [])
    raise click.exceptions.Exit(serve_token(args))
