"""The policy model: frozen data produced by ``policy.load`` and read by ``policy.evaluate``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Literal

#: Never matched by a glob; a rule must name them exactly (and the kubejit namespace is added at load).
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
#: Where kubejit itself lives unless the broker config says otherwise (``brokerNamespace``,
#: ``grantNamespace``). Never matched by a glob and never named by an allow rule: access there is
#: access to the broker's ServiceAccount (and, in-cluster, its pod), hence to everything it may bind.
DEFAULT_BROKER_NAMESPACE = "kubejit"
DEFAULT_GRANT_NAMESPACE = "kubejit-grants"
KUBEJIT_NAMESPACES = frozenset({DEFAULT_BROKER_NAMESPACE, DEFAULT_GRANT_NAMESPACE})


class Outcome(StrEnum):
    AUTO = "auto"  # approved by policy, activates at once
    APPROVAL = "approval"  # waits for approvers
    DENY = "deny"


@dataclass(frozen=True)
class RoleRef:
    """An allow-listed role: the name users request, and what it binds in the cluster."""

    name: str
    kind: Literal["ClusterRole", "Role"]
    ref_name: str
    #: Bind cluster-wide (ClusterRoleBinding); only when the policy says so explicitly.
    cluster_scope: bool = False


@dataclass(frozen=True)
class Rule:
    name: str
    effect: Literal["allow", "deny"]
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    clusters: tuple[str, ...] = ("*",)
    namespaces: tuple[str, ...] = ("*",)
    roles: tuple[str, ...] = ("*",)
    default_duration: timedelta = timedelta(hours=1)
    max_duration: timedelta = timedelta(hours=4)
    #: 0 means auto-approve; otherwise this many distinct approvers, never the requester.
    approvals_required: int = 0
    approver_groups: frozenset[str] = frozenset()
    require_reason: bool = False
    ticket_pattern: str | None = None
    break_glass: bool = False
    #: Break-glass rules only: groups whose members (or an admin) review each use afterwards.
    reviewers: frozenset[str] = frozenset()
    extendable: bool = False
    pending_timeout: timedelta = timedelta(hours=1)
    #: "file:line" of the rule, so a decision can point at its source.
    source: str = ""


#: Claim-matched rules for CI/CD workloads, by the token's issuer (see ``policy.workloads``).
Provider = Literal["github", "gitlab", "oidc"]


@dataclass(frozen=True)
class ClaimMatch:
    """One claim of a workload token and the values it may have (any of; ``*`` globs where allowed)."""

    claim: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class WorkloadRule:
    """Grants a CI/CD job whose token matches every claim: auto-approved, short, namespaced roles only."""

    name: str
    #: The workload issuer's name in the broker config (``workloadIssuers[].name``).
    issuer: str
    provider: Provider
    claims: tuple[ClaimMatch, ...]
    clusters: tuple[str, ...]
    namespaces: tuple[str, ...]
    roles: tuple[str, ...]
    default_duration: timedelta = timedelta(minutes=15)
    max_duration: timedelta = timedelta(minutes=15)
    source: str = ""


@dataclass(frozen=True)
class Policy:
    roles: Mapping[str, RoleRef] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    #: Rules for CI/CD workloads (token exchange); people's ``rules`` never apply to them.
    workloads: tuple[WorkloadRule, ...] = ()
    #: Groups whose members may revoke anyone's grants and offboard users.
    admin_groups: frozenset[str] = frozenset()
    #: Namespaces a glob never matches (system namespaces plus the broker's own).
    protected_namespaces: frozenset[str] = SYSTEM_NAMESPACES | KUBEJIT_NAMESPACES


@dataclass(frozen=True)
class AccessRequest:
    cluster: str
    namespaces: tuple[str, ...]
    role: str
    duration: timedelta | None = None  # None: the rule's default
    reason: str = ""
    ticket: str | None = None
    break_glass: bool = False


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    #: The rule behind the decision ("default-deny" when nothing matched).
    rule: str
    message: str
    role: RoleRef | None = None
    duration: timedelta = timedelta(0)
    max_duration: timedelta = timedelta(0)
    approvals_required: int = 0
    approver_groups: frozenset[str] = frozenset()
    break_glass: bool = False
    #: Who reviews a break-glass grant after it is used (the rule's ``reviewers``; admins always may).
    reviewers: frozenset[str] = frozenset()
    extendable: bool = False
    pending_timeout: timedelta = timedelta(hours=1)

    @property
    def allowed(self) -> bool:
        return self.outcome is not Outcome.DENY
