"""kubejit why: turn a kubectl Forbidden into the `kubejit request` that would allow it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import click

from kubejit.cli import render
from kubejit.cli.client import BrokerClient
from kubejit.cli.declare import command
from kubejit.cli.options import broker_option
from kubejit.denial import Denial, find_denials, request_for
from kubejit.errors import InvalidInput, KubejitError
from kubejit.local import session


@command()
@click.argument("kubectl_args", nargs=-1)
@broker_option
def why(kubectl_args: Sequence[str] = (), broker: str | None = None) -> None:
    """Explain kubectl's Forbidden and print the `kubejit request` that would allow it.

    Examples: kubectl get pods -n other 2>&1 | kubectl jit why;  kubectl jit why -- get pods -n other
    KUBECTL_ARGS: a kubectl command to run and explain (after --).
    """
    if kubectl_args:
        text, code = _run_kubectl(list(kubectl_args))
        if code == 0:
            return
    elif sys.stdin.isatty():
        raise InvalidInput(
            "give a kubectl command after --, or pipe kubectl's error output in",
            hint="e.g. `kubectl get pods -n other 2>&1 | kubectl jit why`",
        )
    else:
        text = sys.stdin.read(1024 * 1024)
    denials = find_denials(text)
    if not denials:
        raise InvalidInput(
            "no Forbidden error in kubectl's output",
            hint="Only `... is forbidden: User ...` errors are explained.",
        )
    url, current = session.for_broker(broker)
    in_context = context_grant(kubectl_args)
    with BrokerClient(url, token=current.token) as client:
        for denial in denials:
            _explain(client, denial, in_context)
    raise click.exceptions.Exit(3)


def context_grant(kubectl_args: Sequence[str]) -> str | None:
    """The grant of the kubectl context that ran (``--context``, else the current one), if kubejit wrote it.

    In jwt mode the API server's Forbidden names the person (``kubejit:alice``), not the grant's
    ServiceAccount: the context says which grant's token kubectl sent.
    """
    from kubejit.kubeconfig_file import default_path, read_kubeconfig

    context = None
    for i, arg in enumerate(kubectl_args):
        if arg.startswith("--context="):
            context = arg.split("=", 1)[1]
        elif arg == "--context" and i + 1 < len(kubectl_args):
            context = kubectl_args[i + 1]
    try:
        config = read_kubeconfig(default_path())
    except KubejitError:
        return None
    current = config.data.get("current-context") if isinstance(config.data, dict) else None
    name = context or current
    return config.owned_contexts().get(name) if isinstance(name, str) else None


def _explain(client: BrokerClient, denial: Denial, in_context: str | None = None) -> None:
    say = render.say
    if denial.grant_id is None and in_context is not None and not denial.user.startswith("system:"):
        denial = replace(denial, context_grant=in_context)
    if denial.grant_id is None:
        said = f"{denial.user} may not {denial.what}; that identity is not a kubejit grant."
        say(render.printable(said))
        return
    try:
        grant = client.call("GET", f"/v1/grants/{denial.grant_id}")
    except KubejitError as exc:
        said = f"{denial.what} was refused to grant {denial.grant_id}: {exc.message}"
        say(render.printable(said))
        return
    happened, command = request_for(grant, denial)
    say(render.printable(f"Forbidden: {denial.what}: {happened}."))
    say(render.printable(f"To get this access run: {command}"))


def _run_kubectl(args: list[str]) -> tuple[str, int]:
    beside = Path(sys.executable).with_name("kubectl")
    kubectl = str(beside) if beside.is_file() else shutil.which("kubectl") or "kubectl"
    try:
        done = subprocess.run([kubectl, *args], capture_output=True, text=True, check=False)
    except OSError as exc:
        raise InvalidInput(f"cannot run kubectl: {exc.strerror}", hint="Is kubectl on PATH?") from exc
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.stderr, done.returncode
