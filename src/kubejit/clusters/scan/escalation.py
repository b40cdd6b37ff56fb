"""Permissions that are worth more than they say: escalation paths, and cluster-wide write.

``bind`` and ``escalate`` on roles let a subject grant itself (or anyone) any role; ``impersonate``
lets it act as anyone. In a privileged namespace (kube-system), creating pods — directly, through a
workload controller, or by exec — runs code as that namespace's ServiceAccounts, and reading Secrets
or minting tokens there yields their credentials. A rule limited by ``resourceNames`` is a narrower
path (kubejit's own broker may ``bind`` only the roles its policy names): it is reported, less severely.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass, replace

from kubejit.clusters.scan.model import RBAC_GROUP, Binding, Json, Rule, parse_rule
from kubejit.clusters.scan.rbac import WRITE_VERBS, ResourceRequest, rule_allows
from kubejit.clusters.scan.resources import ResourceName

#: Review APIs are questions, not writes: `create tokenreviews` changes nothing.
REVIEW_RESOURCES = frozenset(
    {
        "tokenreviews",
        "subjectaccessreviews",
        "selfsubjectaccessreviews",
        "selfsubjectrulesreviews",
        "localsubjectaccessreviews",
        "selfsubjectreviews",
    }
)

_ROLES = (ResourceName(RBAC_GROUP, "clusterroles"), ResourceName(RBAC_GROUP, "roles"))
_IDENTITIES = (
    ResourceName("", "users"),
    ResourceName("", "groups"),
    ResourceName("", "serviceaccounts"),
    ResourceName("authentication.k8s.io", "uids"),
)
_WORKLOADS = (
    *(ResourceName("apps", r) for r in ("deployments", "daemonsets", "statefulsets", "replicasets")),
    *(ResourceName("batch", r) for r in ("jobs", "cronjobs")),
    ResourceName("", "replicationcontrollers"),
)
_PODS = (ResourceName("", "pods"),)
_EXEC = (ResourceName("", "pods", "exec"), ResourceName("", "pods", "attach"))
_SECRETS = (ResourceName("", "secrets"),)
_READ = ("get", "list", "watch")
_Action = tuple[str, tuple[str, ...], tuple[ResourceName, ...]]
# (what it is called in a message, verbs, resources): actions that matter in a privileged namespace.
_PRIVILEGED_ACTIONS: tuple[_Action, ...] = (
    ("create pods", ("create",), _PODS),
    ("create workloads", ("create",), _WORKLOADS),
    ("exec into pods", ("create", "get"), _EXEC),
    ("read secrets", _READ, _SECRETS),
    ("mint ServiceAccount tokens", ("create",), (ResourceName("", "serviceaccounts", "token"),)),
)
#: What a granted role lets its holder do beyond its name, for the approver (kubejit-grant-limits
#: already refuses RBAC writes, tokens, token Secrets and certificates to every grant).
_PAST_THE_GRANT: tuple[_Action, ...] = (
    ("act as other accounts (impersonate), with their rights", ("impersonate",), _IDENTITIES),
    ("exec or attach into pods, and so use their ServiceAccounts' tokens", ("create", "get"), _EXEC),
    (
        "create pods or workloads, which keep running (as their ServiceAccount) after the grant ends",
        ("create",),
        (*_PODS, *_WORKLOADS),
    ),
    ("read Secrets, token Secrets included", _READ, _SECRETS),
)


@dataclass(frozen=True)
class EscalationPath:
    text: str
    #: Unrestricted and effective cluster-wide or in a privileged namespace.
    severe: bool


def grants_write(rules: Iterable[Rule]) -> bool:
    """Any write verb on any resource other than the review APIs."""
    for rule in rules:
        writes = "*" in rule.verbs or bool(rule.verbs & WRITE_VERBS)
        if writes and (rule.resources - REVIEW_RESOURCES):
            return True
    return False


@dataclass(frozen=True)
class _Reach:
    full: bool  # some rule allows it for every object
    names: frozenset[str]  # objects rules with resourceNames allow it for

    def __bool__(self) -> bool:
        return self.full or bool(self.names)

    def describe(self) -> str:
        return "" if self.full or not self.names else f" (only {', '.join(sorted(self.names))})"


def _reach(rules: Iterable[Rule], verbs: Iterable[str], resources: Iterable[ResourceName]) -> _Reach:
    names: set[str] = set()
    for verb in verbs:
        for resource in resources:
            request = ResourceRequest(verb, resource)
            for rule in rules:
                if rule_allows(rule, request):
                    return _Reach(True, frozenset())
                if rule.resource_names and rule_allows(replace(rule, resource_names=frozenset()), request):
                    names.update(rule.resource_names)
    return _Reach(False, frozenset(names))


def paths(
    binding: Binding, rules: tuple[Rule, ...], *, privileged_namespaces: Set[str]
) -> list[EscalationPath]:
    """The escalation paths ``rules`` open through ``binding``, in a stable order."""
    found: list[EscalationPath] = []
    for verb, targets in (("bind", _ROLES), ("escalate", _ROLES), ("impersonate", _IDENTITIES)):
        reached = [(target, reach) for target in targets if (reach := _reach(rules, (verb,), (target,)))]
        if reached:
            what = ", ".join(target.resource for target, _ in reached)
            names = _Reach(any(r.full for _, r in reached), frozenset().union(*(r.names for _, r in reached)))
            severe = any(r.full for _, r in reached) and binding.cluster_wide
            found.append(EscalationPath(f"{verb} {what}{names.describe()}", severe))
    where = _privileged_scope(binding, privileged_namespaces)
    if where:
        for text, verbs, resources in _PRIVILEGED_ACTIONS:
            reach = _reach(rules, verbs, resources)
            if reach:
                found.append(EscalationPath(f"{text}{reach.describe()} in {where}", reach.full))
    return found


def past_the_grant(rules: Iterable[Json]) -> list[str]:
    """The rights of a role's ``rules`` (as the API gives them) that reach past a grant of it: act as
    other accounts, run or reach code that keeps going after it ends, read credentials. A right
    limited to some ``resourceNames`` still counts, naming them."""
    parsed = [parse_rule(rule) for rule in rules]
    return [
        f"{text}{reach.describe()}"
        for text, verbs, resources in _PAST_THE_GRANT
        if (reach := _reach(parsed, verbs, resources))
    ]


def _privileged_scope(binding: Binding, privileged_namespaces: Set[str]) -> str:
    if binding.cluster_wide:
        return ", ".join(sorted(privileged_namespaces))
    return binding.namespace if binding.namespace in privileged_namespaces else ""
