"""The RBAC objects a scan reads, as plain frozen data, parsed from the API's JSON shape.

The scanner reasons over these, never over lightkube models, so every rule is unit-tested with
literal dicts (the same shape `kubectl get -o json` prints). Parsing is tolerant: a field the API
omits (no subjects, no rules) reads as empty, because the API server has validated the objects already.
Only the metadata of token Secrets is ever parsed: there is no field here that could hold their data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

RBAC_GROUP = "rbac.authorization.k8s.io"
_PLURAL = {
    "ClusterRole": "clusterroles",
    "Role": "roles",
    "ClusterRoleBinding": "clusterrolebindings",
    "RoleBinding": "rolebindings",
    "ServiceAccount": "serviceaccounts",
    "Secret": "secrets",
    "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
}

_RBAC_KINDS = frozenset({"ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"})

Json = Mapping[str, Any]


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Which object a finding is about; ``path`` is its API path, unambiguous and clickable-ish."""

    kind: str
    name: str
    namespace: str = ""

    @property
    def path(self) -> str:
        if self.kind in _RBAC_KINDS:
            prefix = f"/apis/{RBAC_GROUP}/v1"
        elif self.kind == "ValidatingAdmissionPolicy":
            prefix = "/apis/admissionregistration.k8s.io/v1"
        else:
            prefix = "/api/v1"
        where = f"/namespaces/{self.namespace}" if self.namespace else ""
        return f"{prefix}{where}/{_PLURAL.get(self.kind, self.kind.lower() + 's')}/{self.name}"

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True, order=True)
class Subject:
    """Who a binding names: a User or Group of the authenticator, or a ServiceAccount."""

    kind: str
    name: str
    namespace: str = ""  # ServiceAccounts only

    @property
    def username(self) -> str:
        """The user name the API server authenticates this subject as (groups have none)."""
        if self.kind == "ServiceAccount":
            return f"system:serviceaccount:{self.namespace}:{self.name}"
        return self.name

    def __str__(self) -> str:
        if self.kind == "ServiceAccount":
            return f"ServiceAccount {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Rule:
    """One PolicyRule; empty sets mean "none", ``*`` means "any", exactly as the API defines them."""

    verbs: frozenset[str] = frozenset()
    api_groups: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    resource_names: frozenset[str] = frozenset()
    non_resource_urls: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LabelSelector:
    match_labels: Mapping[str, str] = field(default_factory=dict)
    #: (key, operator, values) as the API spells them: In, NotIn, Exists, DoesNotExist.
    match_expressions: tuple[tuple[str, str, frozenset[str]], ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(key) != value for key, value in self.match_labels.items()):
            return False
        return all(_expression_holds(labels, *expression) for expression in self.match_expressions)


def _expression_holds(labels: Mapping[str, str], key: str, operator: str, values: frozenset[str]) -> bool:
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not (present and labels[key] in values)
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    return False  # an operator the API does not define selects nothing


@dataclass(frozen=True)
class Role:
    """A ClusterRole or Role. ``aggregation`` is None unless the role aggregates others by label."""

    ref: ObjectRef
    rules: tuple[Rule, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    aggregation: tuple[LabelSelector, ...] | None = None


@dataclass(frozen=True)
class Binding:
    """A ClusterRoleBinding (cluster-wide) or RoleBinding (its namespace only)."""

    ref: ObjectRef
    role_kind: str
    role_name: str
    subjects: tuple[Subject, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def cluster_wide(self) -> bool:
        return self.ref.kind == "ClusterRoleBinding"

    @property
    def namespace(self) -> str:
        return self.ref.namespace

    @property
    def role_ref(self) -> ObjectRef:
        """The role it grants: a Role lives in the binding's namespace, a ClusterRole nowhere."""
        if self.role_kind == "Role":
            return ObjectRef("Role", self.role_name, self.ref.namespace)
        return ObjectRef("ClusterRole", self.role_name)


@dataclass(frozen=True)
class ServiceAccount:
    ref: ObjectRef
    created: datetime | None = None


@dataclass(frozen=True)
class TokenSecret:
    """The metadata of a legacy ``kubernetes.io/service-account-token`` Secret; never its data."""

    ref: ObjectRef
    account: str
    created: datetime | None = None


@dataclass(frozen=True)
class AdmissionPolicies:
    """The cluster's ValidatingAdmissionPolicies by name, and those a binding enforces (``Deny``)."""

    names: frozenset[str] = frozenset()
    enforced: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Snapshot:
    """Everything one scan read from one cluster, at one moment."""

    cluster: str
    roles: tuple[Role, ...] = ()
    bindings: tuple[Binding, ...] = ()
    service_accounts: tuple[ServiceAccount, ...] = ()
    token_secrets: tuple[TokenSecret, ...] = ()
    #: None: the scanning identity may not list them (kubejit's guard rails are then not checked).
    admission: AdmissionPolicies | None = None

    def counts(self) -> dict[str, int]:
        return {
            "clusterroles": sum(1 for r in self.roles if r.ref.kind == "ClusterRole"),
            "roles": sum(1 for r in self.roles if r.ref.kind == "Role"),
            "clusterrolebindings": sum(1 for b in self.bindings if b.cluster_wide),
            "rolebindings": sum(1 for b in self.bindings if not b.cluster_wide),
            "serviceaccounts": len(self.service_accounts),
            "token_secrets": len(self.token_secrets),
        }


# -- parsing the API's JSON ----------------------------------------------------------------------
def _meta(obj: Json) -> Json:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _ref(kind: str, obj: Json) -> ObjectRef:
    meta = _meta(obj)
    return ObjectRef(kind, str(meta.get("name") or ""), str(meta.get("namespace") or ""))


def _strings(value: Any) -> frozenset[str]:
    return frozenset(str(item) for item in value or ())


def _labels(obj: Json) -> dict[str, str]:
    return {str(k): str(v) for k, v in (_meta(obj).get("labels") or {}).items()}


def _created(obj: Json) -> datetime | None:
    stamp = _meta(obj).get("creationTimestamp")
    if isinstance(stamp, datetime):
        return stamp
    try:
        return datetime.fromisoformat(str(stamp)) if stamp else None
    except ValueError:
        return None


def parse_rule(obj: Json) -> Rule:
    return Rule(
        verbs=_strings(obj.get("verbs")),
        api_groups=_strings(obj.get("apiGroups")),
        resources=_strings(obj.get("resources")),
        resource_names=_strings(obj.get("resourceNames")),
        non_resource_urls=_strings(obj.get("nonResourceURLs")),
    )


def parse_selector(obj: Json) -> LabelSelector:
    expressions = tuple(
        (str(e.get("key", "")), str(e.get("operator", "")), _strings(e.get("values")))
        for e in obj.get("matchExpressions") or ()
    )
    labels = {str(k): str(v) for k, v in (obj.get("matchLabels") or {}).items()}
    return LabelSelector(match_labels=labels, match_expressions=expressions)


def parse_role(kind: str, obj: Json) -> Role:
    aggregation = obj.get("aggregationRule")
    selectors = None
    if isinstance(aggregation, Mapping):
        selectors = tuple(parse_selector(s) for s in aggregation.get("clusterRoleSelectors") or ())
    return Role(
        ref=_ref(kind, obj),
        rules=tuple(parse_rule(r) for r in obj.get("rules") or ()),
        labels=_labels(obj),
        aggregation=selectors,
    )


def parse_subject(obj: Json, *, binding_namespace: str = "") -> Subject:
    """A ServiceAccount subject without a namespace means the binding's own (the authorizer's rule)."""
    kind, name = str(obj.get("kind") or ""), str(obj.get("name") or "")
    if kind != "ServiceAccount":
        return Subject(kind, name)
    return Subject(kind, name, str(obj.get("namespace") or binding_namespace))


def parse_binding(kind: str, obj: Json) -> Binding:
    ref = _ref(kind, obj)
    role_ref = obj.get("roleRef") or {}
    return Binding(
        ref=ref,
        role_kind=str(role_ref.get("kind") or ""),
        role_name=str(role_ref.get("name") or ""),
        subjects=tuple(parse_subject(s, binding_namespace=ref.namespace) for s in obj.get("subjects") or ()),
        labels=_labels(obj),
    )


def parse_service_account(obj: Json) -> ServiceAccount:
    return ServiceAccount(ref=_ref("ServiceAccount", obj), created=_created(obj))


#: The annotation that ties a legacy token Secret to its ServiceAccount.
SERVICE_ACCOUNT_NAME_ANNOTATION = "kubernetes.io/service-account.name"


def parse_token_secret(metadata_only: Json) -> TokenSecret:
    """From a PartialObjectMetadata (or any object): reads the name, age and owner, nothing else."""
    annotations = _meta(metadata_only).get("annotations") or {}
    return TokenSecret(
        ref=_ref("Secret", metadata_only),
        account=str(annotations.get(SERVICE_ACCOUNT_NAME_ANNOTATION) or ""),
        created=_created(metadata_only),
    )


def snapshot_from_objects(
    cluster: str,
    *,
    cluster_roles: Sequence[Json] = (),
    roles: Sequence[Json] = (),
    cluster_role_bindings: Sequence[Json] = (),
    role_bindings: Sequence[Json] = (),
    service_accounts: Sequence[Json] = (),
    token_secrets: Sequence[Json] = (),
    admission_policies: Sequence[Json] | None = None,
    admission_bindings: Sequence[Json] | None = None,
) -> Snapshot:
    """A ``Snapshot`` from lists of API objects (dicts), as listed from the cluster; the admission
    lists are None when they could not be read."""
    admission = None
    if admission_policies is not None and admission_bindings is not None:
        admission = parse_admission(admission_policies, admission_bindings)
    return Snapshot(
        cluster=cluster,
        roles=(
            *(parse_role("ClusterRole", o) for o in cluster_roles),
            *(parse_role("Role", o) for o in roles),
        ),
        bindings=(
            *(parse_binding("ClusterRoleBinding", o) for o in cluster_role_bindings),
            *(parse_binding("RoleBinding", o) for o in role_bindings),
        ),
        service_accounts=tuple(parse_service_account(o) for o in service_accounts),
        token_secrets=tuple(parse_token_secret(o) for o in token_secrets),
        admission=admission,
    )


def parse_admission(policies: Sequence[Json], bindings: Sequence[Json]) -> AdmissionPolicies:
    """A policy is enforced when a binding names it with ``Deny`` among its validation actions."""
    enforced = set()
    for binding in bindings:
        spec = binding.get("spec")
        if isinstance(spec, Mapping) and "Deny" in (spec.get("validationActions") or ()):
            enforced.add(str(spec.get("policyName") or ""))
    return AdmissionPolicies(
        names=frozenset(str(_meta(p).get("name") or "") for p in policies), enforced=frozenset(enforced)
    )
