"""kubejit policy check / validate: policy as code, tested locally with no broker and no cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubejit.cli import render
from kubejit.cli.options import OutputOpt
from kubejit.clock import SystemClock
from kubejit.durations import parse_duration
from kubejit.identity.principal import Principal
from kubejit.policy.explain import explain, format_explanation
from kubejit.policy.load import load_policy_file
from kubejit.policy.model import DEFAULT_BROKER_NAMESPACE, DEFAULT_GRANT_NAMESPACE, AccessRequest, Policy

app = typer.Typer(help="Check and test access policy files.", no_args_is_help=True)

PolicyFile = Annotated[
    Path, typer.Option("--policy", "-p", help="The policy YAML file.", envvar="KUBEJIT_POLICY")
]
# The broker protects its own namespaces from every rule; check the policy the way it will load it.
BrokerNamespace = Annotated[
    str, typer.Option("--broker-namespace", help="The broker's namespace (config brokerNamespace).")
]
GrantNamespace = Annotated[
    str, typer.Option("--grant-namespace", help="Where grant ServiceAccounts live (config grantNamespace).")
]


def _load(policy: Path, broker_namespace: str, grant_namespace: str) -> Policy:
    return load_policy_file(policy, protected_namespaces=frozenset({broker_namespace, grant_namespace}))


@app.command()
def validate(
    policy: PolicyFile,
    broker_namespace: BrokerNamespace = DEFAULT_BROKER_NAMESPACE,
    grant_namespace: GrantNamespace = DEFAULT_GRANT_NAMESPACE,
) -> None:
    """Load a policy file and report the first error as file:line:column (exit 78), or OK."""
    loaded = _load(policy, broker_namespace, grant_namespace)
    render.console.print(
        f"{policy}: OK ({len(loaded.rules)} rules, roles: {', '.join(sorted(loaded.roles))})"
    )


@app.command()
def check(
    policy: PolicyFile,
    user: Annotated[str, typer.Option("--user", "-u", help="Who asks, e.g. alice.")],
    cluster: Annotated[str, typer.Option("--cluster", "-c", help="Cluster name.")],
    role: Annotated[str, typer.Option("--role", "-r", help="Role from the policy's allow-list.")],
    group: Annotated[
        list[str] | None, typer.Option("--group", "-g", help="A group of the user; repeat.")
    ] = None,
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", "-n", help="Namespace; repeat.")
    ] = None,
    duration: Annotated[str | None, typer.Option("--for", help="Requested duration, e.g. 2h.")] = None,
    reason: Annotated[str, typer.Option("--reason")] = "",
    ticket: Annotated[str | None, typer.Option("--ticket")] = None,
    break_glass: Annotated[bool, typer.Option("--break-glass")] = False,
    broker_namespace: BrokerNamespace = DEFAULT_BROKER_NAMESPACE,
    grant_namespace: GrantNamespace = DEFAULT_GRANT_NAMESPACE,
    output: OutputOpt = render.Output.table,
) -> None:
    """Dry run: the decision for a request, and the rule that made it. Exit 0 if allowed, 3 if denied.

    Example: kubejit policy check -p policy.yaml -u alice -g developers -c dev -n team-a -r edit --for 2h
    """
    loaded = _load(policy, broker_namespace, grant_namespace)
    who = Principal(name=user, groups=frozenset(group or ()))
    request = AccessRequest(
        cluster=cluster,
        namespaces=tuple(namespace or ()),
        role=role,
        duration=parse_duration(duration) if duration else None,
        reason=reason,
        ticket=ticket,
        break_glass=break_glass,
    )
    result = explain(loaded, who, request, now=SystemClock().now())
    if output is render.Output.json:
        d = result.decision
        render.as_json(
            "PolicyDecision",
            {
                "outcome": str(d.outcome),
                "rule": d.rule,
                "message": d.message,
                "duration_seconds": int(d.duration.total_seconds()),
                "approvals_required": d.approvals_required,
                "approver_groups": sorted(d.approver_groups),
                "break_glass": d.break_glass,
                "reviewers": sorted(d.reviewers),
                "rules": [
                    {"rule": v.rule, "status": str(v.status), "detail": v.detail} for v in result.rules
                ],
            },
        )
    else:
        print(format_explanation(result))
    if not result.decision.allowed:
        raise typer.Exit(3)
