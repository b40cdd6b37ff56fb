"""RBAC evaluated offline, as kube-apiserver's RBAC authorizer does: who can do what, where, and why.

``RbacIndex`` resolves every binding to the rules it grants, aggregated ClusterRoles included: their
rules are computed from their label selectors here rather than trusted from the stored object, because
the aggregation controller may lag, or not run at all. Rule matching follows the authorizer
(pkg/apis/rbac/v1/evaluation_helpers.go): `*` wildcards, `*/subresource`, resourceNames. A request
without a namespace is a cluster-wide question, answered by ClusterRoleBindings only, as a
SubjectAccessReview without a namespace is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from kubejit.clusters.scan.model import Binding, ObjectRef, Role, Rule, Snapshot, Subject
from kubejit.clusters.scan.resources import ResourceName

#: The API's write verbs: what turns read access into change.
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
#: Verbs the matrix shows, in order, with the letter each one is drawn as.
MATRIX_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
#: Columns of the default matrix: what an attacker wants first in a namespace.
MATRIX_RESOURCES = (
    "pods",
    "pods/exec",
    "secrets",
    "configmaps",
    "serviceaccounts/token",
    "deployments.apps",
    "rolebindings.rbac.authorization.k8s.io",
    "roles.rbac.authorization.k8s.io",
)


@dataclass(frozen=True)
class ResourceRequest:
    """One question the authorizer answers: verb on group/resource[/subresource][/name] in a namespace."""

    verb: str
    resource: ResourceName
    namespace: str = ""  # "" = cluster-wide
    name: str = ""


@dataclass(frozen=True, order=True)
class Access:
    """``subject`` holds the request through ``binding`` (which grants ``role``)."""

    subject: Subject
    binding: ObjectRef
    role: ObjectRef


def rule_allows(rule: Rule, request: ResourceRequest) -> bool:
    """Whether one PolicyRule allows a resource request (the authorizer's RuleAllows)."""
    return (
        _has(rule.verbs, request.verb)
        and _has(rule.api_groups, request.resource.group)
        and _resource_matches(rule.resources, request.resource)
        and (not rule.resource_names or request.name in rule.resource_names)
    )


def _has(values: frozenset[str], wanted: str) -> bool:
    return "*" in values or wanted in values


def _resource_matches(resources: frozenset[str], wanted: ResourceName) -> bool:
    if "*" in resources:
        return True
    if not wanted.subresource:
        return wanted.resource in resources
    return f"{wanted.resource}/{wanted.subresource}" in resources or f"*/{wanted.subresource}" in resources


def rules_allow(rules: Iterable[Rule], request: ResourceRequest) -> bool:
    return any(rule_allows(rule, request) for rule in rules)


class RbacIndex:
    """Bindings by namespace and the effective rules of every role, computed once per snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.roles: dict[ObjectRef, Role] = {role.ref: role for role in snapshot.roles}
        self._cluster_roles = [role for role in snapshot.roles if role.ref.kind == "ClusterRole"]
        self._effective: dict[ObjectRef, tuple[Rule, ...]] = {}
        self.bindings: dict[ObjectRef, Binding] = {binding.ref: binding for binding in snapshot.bindings}
        self.cluster_bindings: list[Binding] = []
        self.namespace_bindings: dict[str, list[Binding]] = defaultdict(list)
        for binding in snapshot.bindings:
            if binding.cluster_wide:
                self.cluster_bindings.append(binding)
            else:
                self.namespace_bindings[binding.namespace].append(binding)

    # -- roles -----------------------------------------------------------------------------------
    def rules_of(self, role: ObjectRef) -> tuple[Rule, ...]:
        """The rules ``role`` grants; aggregated ClusterRoles resolved; a missing role grants nothing."""
        if role not in self._effective:
            self._effective[role] = self._resolve(role, visiting=frozenset())
        return self._effective[role]

    def _resolve(self, ref: ObjectRef, *, visiting: frozenset[ObjectRef]) -> tuple[Rule, ...]:
        if ref in self._effective:
            return self._effective[ref]
        role = self.roles.get(ref)
        if role is None:
            return ()
        if role.aggregation is None or ref in visiting:
            return role.rules
        # The controller replaces the stored rules with the union of the selected roles' rules; the
        # stored ones are kept too, so a lagging controller can only make the answer larger, never hide.
        rules = dict.fromkeys(role.rules)
        for selected in self._selected_by(role):
            rules.update(dict.fromkeys(self._resolve(selected.ref, visiting=visiting | {ref})))
        return tuple(rules)

    def _selected_by(self, role: Role) -> Iterator[Role]:
        for other in self._cluster_roles:
            if other.ref != role.ref and any(s.matches(other.labels) for s in role.aggregation or ()):
                yield other

    def rules_for(self, binding: Binding) -> tuple[Rule, ...]:
        return self.rules_of(binding.role_ref)

    # -- bindings --------------------------------------------------------------------------------
    def bindings_for(self, namespace: str) -> Iterator[Binding]:
        """Bindings that count in ``namespace``; "" (cluster-wide) counts ClusterRoleBindings only."""
        yield from self.cluster_bindings
        if namespace:
            yield from self.namespace_bindings.get(namespace, ())

    @property
    def namespaces(self) -> list[str]:
        """Every namespace that holds a RoleBinding, a Role or a ServiceAccount."""
        found = set(self.namespace_bindings)
        found.update(role.ref.namespace for role in self.snapshot.roles if role.ref.namespace)
        found.update(sa.ref.namespace for sa in self.snapshot.service_accounts)
        return sorted(found)


def who_can(index: RbacIndex, request: ResourceRequest) -> list[Access]:
    """Every (subject, binding) that allows ``request``, sorted; a subject may appear via several."""
    found: set[Access] = set()
    for binding in index.bindings_for(request.namespace):
        if binding.subjects and rules_allow(index.rules_for(binding), request):
            found.update(Access(subject, binding.ref, binding.role_ref) for subject in binding.subjects)
    return sorted(found)


def subject_can(index: RbacIndex, subject: Subject, request: ResourceRequest) -> bool:
    """Whether the subject itself (not groups it may belong to) is allowed ``request``."""
    return any(access.subject == subject for access in who_can(index, request))


@dataclass(frozen=True)
class Matrix:
    """Subjects by resources in one namespace (or cluster-wide): the verbs each subject holds."""

    namespace: str
    verbs: tuple[str, ...]
    resources: tuple[ResourceName, ...]
    #: subject → resource (as text) → verbs allowed, in ``verbs`` order; subjects with nothing are absent.
    cells: dict[Subject, dict[str, tuple[str, ...]]]


def matrix(
    index: RbacIndex,
    namespace: str,
    *,
    resources: Sequence[ResourceName],
    verbs: Sequence[str] = MATRIX_VERBS,
    skip: Callable[[Binding], bool] = lambda _binding: False,
) -> Matrix:
    """What every bound subject may do in ``namespace``, per resource and verb; roles evaluated once.

    Bindings for which ``skip`` holds (say, Kubernetes' own) are left out.
    """
    per_role: dict[ObjectRef, dict[str, tuple[str, ...]]] = {}
    cells: dict[Subject, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for binding in index.bindings_for(namespace):
        if skip(binding):
            continue
        role = binding.role_ref
        if role not in per_role:
            per_role[role] = _role_row(index.rules_of(role), namespace, resources, verbs)
        for subject in binding.subjects:
            for resource, allowed in per_role[role].items():
                cells[subject][resource].update(allowed)
    ordered = {
        subject: {res: tuple(v for v in verbs if v in row[res]) for res in row if row[res]}
        for subject, row in sorted(cells.items())
        if any(row.values())
    }
    return Matrix(namespace, tuple(verbs), tuple(resources), ordered)


def _role_row(
    rules: tuple[Rule, ...], namespace: str, resources: Sequence[ResourceName], verbs: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    row: dict[str, tuple[str, ...]] = {}
    for resource in resources:
        allowed = tuple(
            verb for verb in verbs if rules_allow(rules, ResourceRequest(verb, resource, namespace))
        )
        if allowed:
            row[str(resource)] = allowed
    return row
