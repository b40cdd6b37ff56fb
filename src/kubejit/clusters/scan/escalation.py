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

from kubejit.clusters.scan.model import RBAC_GROUP, Binding, Rule
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
# (what it is called in a message, verbs, resources): actions that matter in a privileged namespace.
_PRIVILEGED_ACTIONS: tuple[tuple[str, tuple[str, ...], tuple[ResourceName, ...]], ...] = (
    ("create pods", ("create",), (ResourceName("", "pods"),)),
    ("create workloads", ("create",), _WORKLOADS),
    (
        "exec into pods",
        ("create", "get"),
        (ResourceName("", "pods", "exec"), ResourceName("", "pods", "attach")),
    ),
    ("read secrets", ("get", "list", "watch"), (ResourceName("", "secrets"),)),
    ("mint ServiceAccount tokens", ("create",), (ResourceName("", "serviceaccounts", "token"),)),
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


def _privileged_scope(binding: Binding, privileged_namespaces: Set[str]) -> str:
    if binding.cluster_wide:
        return ", ".join(sorted(privileged_namespaces))
    return binding.namespace if binding.namespace in privileged_namespaces else ""
