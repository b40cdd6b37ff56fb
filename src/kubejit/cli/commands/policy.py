"""kubejit policy check / validate: policy as code, tested locally with no broker and no cluster."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from kubejit.cli import render
from kubejit.cli.declare import command, group
from kubejit.cli.options import output_option, path_type
from kubejit.clock import SystemClock
from kubejit.durations import parse_duration
from kubejit.identity.principal import Principal
from kubejit.policy.explain import explain, format_explanation
from kubejit.policy.load import load_policy_file
from kubejit.policy.model import DEFAULT_BROKER_NAMESPACE, DEFAULT_GRANT_NAMESPACE, AccessRequest, Policy

app = group("policy", help="Check and test access policy files.")

policy_option = click.option(
    "--policy",
    "-p",
    required=True,
    type=path_type(),
    envvar="KUBEJIT_POLICY",
    show_envvar=True,
    help="The policy YAML file.",
)
# The broker protects its own namespaces from every rule; check the policy the way it will load it.
broker_namespace_option = click.option(
    "--broker-namespace",
    default=DEFAULT_BROKER_NAMESPACE,
    show_default=True,
    help="The broker's namespace (config brokerNamespace).",
)
grant_namespace_option = click.option(
    "--grant-namespace",
    default=DEFAULT_GRANT_NAMESPACE,
    show_default=True,
    help="Where grant ServiceAccounts live (config grantNamespace).",
)


def _load(policy: Path, broker_namespace: str, grant_namespace: str) -> Policy:
    return load_policy_file(policy, protected_namespaces=frozenset({broker_namespace, grant_namespace}))


@command(group=app)
@policy_option
@broker_namespace_option
@grant_namespace_option
def validate(
    policy: Path,
    broker_namespace: str = DEFAULT_BROKER_NAMESPACE,
    grant_namespace: str = DEFAULT_GRANT_NAMESPACE,
) -> None:
    """Load a policy file and report the first error as file:line:column (exit 78), or OK."""
    loaded = _load(policy, broker_namespace, grant_namespace)
    render.console.print(
        f"{policy}: OK ({len(loaded.rules)} rules, roles: {', '.join(sorted(loaded.roles))})"
    )


@command(group=app)
@policy_option
@click.option("--user", "-u", required=True, help="Who asks, e.g. alice.")
@click.option("--cluster", "-c", required=True, help="Cluster name.")
@click.option("--role", "-r", required=True, help="Role from the policy's allow-list.")
@click.option("--group", "-g", multiple=True, help="A group of the user; repeat.")
@click.option("--namespace", "-n", multiple=True, help="Namespace; repeat.")
@click.option("--for", "duration", help="Requested duration, e.g. 2h.")
@click.option("--reason", default="", show_default=False)
@click.option("--ticket")
@click.option("--break-glass", is_flag=True)
@broker_namespace_option
@grant_namespace_option
@output_option
def check(
    policy: Path,
    user: str,
    cluster: str,
    role: str,
    group: Sequence[str] = (),
    namespace: Sequence[str] = (),
    duration: str | None = None,
    reason: str = "",
    ticket: str | None = None,
    break_glass: bool = False,
    broker_namespace: str = DEFAULT_BROKER_NAMESPACE,
    grant_namespace: str = DEFAULT_GRANT_NAMESPACE,
    output: render.Output = render.Output.table,
) -> None:
    """Dry run: the decision for a request, and the rule that made it. Exit 0 if allowed, 3 if denied.

    Example: kubejit policy check -p policy.yaml -u alice -g developers -c dev -n team-a -r edit --for 2h
    """
    loaded = _load(policy, broker_namespace, grant_namespace)
    who = Principal(name=user, groups=frozenset(group))
    request = AccessRequest(
        cluster=cluster,
        namespaces=tuple(namespace),
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
        raise click.exceptions.Exit(3)
