"""What a scan must not report: Kubernetes' own bootstrap bindings, and kubejit's own grant bindings.

kube-apiserver creates its default bindings at start (RBAC bootstrap policy) and labels them
``kubernetes.io/bootstrapping=rbac-defaults``. A label anyone can set proves nothing, so a binding is a
default only if its name is known *and* its role and subjects are the default ones (a subset: some
versions drop subjects). Adding a user to the ``cluster-admin`` binding therefore gets reported.
Bindings of other Kubernetes versions, unknown here, are recognised only when every part of them is a
``system:`` identity: the bootstrap policy never binds anyone else.

kubejit's grant bindings are just-in-time by construction (they expire); they are recognised by their
full shape, the way ``clusters.objects`` builds them, not by the managed-by label alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from kubejit.clusters.objects import GRANT_LABEL, MANAGED_BY, MANAGED_BY_LABEL, is_grant_id, object_name
from kubejit.clusters.scan.model import Binding, Rule, Subject
from kubejit.identity.cluster_tokens import grant_group
from kubejit.ids import GrantId

BOOTSTRAP_LABEL = "kubernetes.io/bootstrapping"
BOOTSTRAP_VALUE = "rbac-defaults"
SYSTEM_NAMESPACE = "kube-system"

# Each default ClusterRoleBinding `system:controller:<name>` grants the ClusterRole of the same name to
# the ServiceAccount kube-system/<name>.
_CONTROLLERS = [
    "attachdetach-controller",
    "certificate-controller",
    "clusterrole-aggregation-controller",
    "cronjob-controller",
    "daemon-set-controller",
    "deployment-controller",
    "device-taint-eviction-controller",
    "disruption-controller",
    "endpoint-controller",
    "endpointslice-controller",
    "endpointslicemirroring-controller",
    "ephemeral-volume-controller",
    "expand-controller",
    "generic-garbage-collector",
    "horizontal-pod-autoscaler",
    "job-controller",
    "kube-apiserver-serving-clustertrustbundle-publisher",
    "legacy-service-account-token-cleaner",
    "namespace-controller",
    "node-controller",
    "persistent-volume-binder",
    "pod-garbage-collector",
    "podcertificaterequestcleaner",
    "pv-protection-controller",
    "pvc-protection-controller",
    "replicaset-controller",
    "replication-controller",
    "resource-claim-controller",
    "resourcequota-controller",
    "root-ca-cert-publisher",
    "route-controller",
    "selinux-warning-controller",
    "service-account-controller",
    "service-cidrs-controller",
    "service-controller",
    "statefulset-controller",
    "storage-version-migrator-controller",
    "ttl-after-finished-controller",
    "ttl-controller",
    "validatingadmissionpolicy-status-controller",
    "volumeattributesclass-protection-controller",
]

# (namespace, binding name) -> (role kind, role name, subjects as "user:", "group:" or "sa:ns/name").
# From a fresh kube-apiserver 1.37 (`kubectl get clusterrolebindings,rolebindings -A -o json`).
_OTHER_DEFAULTS: dict[tuple[str, str], tuple[str, str, tuple[str, ...]]] = {
    ("", "cluster-admin"): ("ClusterRole", "cluster-admin", ("group:system:masters",)),
    ("", "system:basic-user"): ("ClusterRole", "system:basic-user", ("group:system:authenticated",)),
    ("", "system:cluster-trust-bundle-discovery"): (
        "ClusterRole",
        "system:cluster-trust-bundle-discovery",
        ("group:system:serviceaccounts",),
    ),
    ("", "system:discovery"): ("ClusterRole", "system:discovery", ("group:system:authenticated",)),
    ("", "system:kube-controller-manager"): (
        "ClusterRole",
        "system:kube-controller-manager",
        ("user:system:kube-controller-manager",),
    ),
    ("", "system:kube-dns"): ("ClusterRole", "system:kube-dns", ("sa:kube-system/kube-dns",)),
    ("", "system:kube-scheduler"): ("ClusterRole", "system:kube-scheduler", ("user:system:kube-scheduler",)),
    ("", "system:monitoring"): ("ClusterRole", "system:monitoring", ("group:system:monitoring",)),
    ("", "system:node"): ("ClusterRole", "system:node", ()),
    ("", "system:node-proxier"): ("ClusterRole", "system:node-proxier", ("user:system:kube-proxy",)),
    ("", "system:public-info-viewer"): (
        "ClusterRole",
        "system:public-info-viewer",
        ("group:system:authenticated", "group:system:unauthenticated"),
    ),
    ("", "system:service-account-issuer-discovery"): (
        "ClusterRole",
        "system:service-account-issuer-discovery",
        ("group:system:serviceaccounts",),
    ),
    ("", "system:volume-scheduler"): (
        "ClusterRole",
        "system:volume-scheduler",
        ("user:system:kube-scheduler",),
    ),
    ("kube-public", "system:controller:bootstrap-signer"): (
        "Role",
        "system:controller:bootstrap-signer",
        ("sa:kube-system/bootstrap-signer",),
    ),
    ("kube-system", "system::extension-apiserver-authentication-reader"): (
        "Role",
        "extension-apiserver-authentication-reader",
        ("user:system:kube-controller-manager", "user:system:kube-scheduler"),
    ),
    ("kube-system", "system::leader-locking-kube-controller-manager"): (
        "Role",
        "system::leader-locking-kube-controller-manager",
        (
            "user:system:kube-controller-manager",
            "sa:kube-system/kube-controller-manager",
            "sa:kube-system/leader-election-controller",
        ),
    ),
    ("kube-system", "system::leader-locking-kube-scheduler"): (
        "Role",
        "system::leader-locking-kube-scheduler",
        ("user:system:kube-scheduler", "sa:kube-system/kube-scheduler"),
    ),
    ("kube-system", "system:controller:bootstrap-signer"): (
        "Role",
        "system:controller:bootstrap-signer",
        ("sa:kube-system/bootstrap-signer",),
    ),
    ("kube-system", "system:controller:cloud-provider"): (
        "Role",
        "system:controller:cloud-provider",
        ("sa:kube-system/cloud-provider",),
    ),
    ("kube-system", "system:controller:token-cleaner"): (
        "Role",
        "system:controller:token-cleaner",
        ("sa:kube-system/token-cleaner",),
    ),
}


def _table() -> dict[tuple[str, str], tuple[str, str, frozenset[str]]]:
    table = {
        key: (kind, name, frozenset(subjects)) for key, (kind, name, subjects) in _OTHER_DEFAULTS.items()
    }
    for controller in _CONTROLLERS:
        name = f"system:controller:{controller}"
        table["", name] = ("ClusterRole", name, frozenset({f"sa:{SYSTEM_NAMESPACE}/{controller}"}))
    return table


DEFAULT_BINDINGS = _table()


def subject_key(subject: Subject) -> str:
    """The compact spelling used by the table above."""
    if subject.kind == "ServiceAccount":
        return f"sa:{subject.namespace}/{subject.name}"
    return f"{subject.kind.lower()}:{subject.name}"


def is_default_binding(binding: Binding, rules: Iterable[Rule] = ()) -> bool:
    """Created by kube-apiserver's RBAC bootstrap, and unchanged in what it grants to whom.

    ``rules`` (of the bound role) unmask a disguise: a binding unknown here that is all ``system:``
    passes for another version's default, unless its role grants everything (no default but
    cluster-admin's does, and that one is in the table).
    """
    if binding.labels.get(BOOTSTRAP_LABEL) != BOOTSTRAP_VALUE:
        return False
    known = DEFAULT_BINDINGS.get((binding.namespace, binding.ref.name))
    if known is None:
        return _looks_like_other_version_default(binding) and not grants_everything(rules)
    role_kind, role_name, subjects = known
    return (
        binding.role_kind == role_kind
        and binding.role_name == role_name
        and {subject_key(s) for s in binding.subjects} <= subjects
    )


def grants_everything(rules: Iterable[Rule]) -> bool:
    """A `*` verb on `*` resources of `*` API groups: what cluster-admin holds."""
    return any({"*"} <= r.verbs and {"*"} <= r.api_groups and {"*"} <= r.resources for r in rules)


def _looks_like_other_version_default(binding: Binding) -> bool:
    return (
        binding.ref.name.startswith("system:")
        and binding.role_name.startswith("system:")
        and binding.namespace in ("", SYSTEM_NAMESPACE, "kube-public")
        and all(is_system_subject(s) and not reaches_everyone(s) for s in binding.subjects)
    )


#: Groups that every (authenticated, anonymous, or ServiceAccount) identity is in.
EVERYONE_GROUPS = frozenset({"system:authenticated", "system:unauthenticated", "system:serviceaccounts"})


def reaches_everyone(subject: Subject) -> bool:
    """A subject that stands for a crowd: all users, anonymous requests, or all ServiceAccounts."""
    if subject.kind == "User":
        return subject.name == "system:anonymous"
    if subject.kind == "Group":
        return subject.name in EVERYONE_GROUPS or subject.name.startswith("system:serviceaccounts:")
    return False


def is_system_subject(subject: Subject) -> bool:
    """An identity of Kubernetes itself: a `system:` user or group, or an account in kube-system."""
    if subject.kind == "ServiceAccount":
        return subject.namespace == SYSTEM_NAMESPACE
    return subject.name.startswith("system:")


#: Where kubejit creates its per-grant ServiceAccounts (config ``grantNamespace``).
GRANT_NAMESPACE = "kubejit-grants"


def is_kubejit_grant_binding(binding: Binding, *, grant_namespace: str = GRANT_NAMESPACE) -> bool:
    """A binding kubejit made for one grant: labelled, named for the grant, bound to its account only
    (which lives in the grant namespace: an account of that name elsewhere is someone else's), or,
    in jwt mode, to the grant's group ``kubejit:grant:<id>`` only."""
    if binding.labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
        return False
    grant = binding.labels.get(GRANT_LABEL, "")
    if not is_grant_id(grant):
        return False
    name = object_name(GrantId(grant))
    if binding.ref.name != name or len(binding.subjects) != 1:
        return False
    (subject,) = binding.subjects
    if subject.kind == "Group":  # jwt mode: the grant's own group, which only kubejit's tokens carry
        return subject.name == grant_group(grant)
    return subject.kind == "ServiceAccount" and subject.name == name and subject.namespace == grant_namespace


def is_recognised(
    binding: Binding, rules: Iterable[Rule] = (), *, grant_namespace: str = GRANT_NAMESPACE
) -> bool:
    """Not standing privilege a person should review: a Kubernetes default or a kubejit grant."""
    return is_default_binding(binding, rules) or is_kubejit_grant_binding(
        binding, grant_namespace=grant_namespace
    )
