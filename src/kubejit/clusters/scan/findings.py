"""Standing-privilege findings: pure rules over a ``Snapshot``, each with a severity and an object path.

A finding is about one object (a binding or a token Secret) and names the subjects it concerns. The
rules, with the reasoning behind each severity, are in ``RULES``; docs/scan.md lists them for users.
Bindings that Kubernetes made for itself, kubejit's own (expiring) grant bindings and the broker's own
RBAC (deploy/rbac.yaml) are recognised (``defaults.is_recognised``, ``broker.is_broker_binding``) and
never reported. Time comes in as ``now``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from kubejit.clusters.broker_manifest import BROKER_POLICY, GRANT_POLICY
from kubejit.clusters.scan import escalation
from kubejit.clusters.scan.broker import is_broker_binding
from kubejit.clusters.scan.defaults import GRANT_NAMESPACE, grants_everything, is_recognised, reaches_everyone
from kubejit.clusters.scan.model import Binding, ObjectRef, Rule, Snapshot, Subject, TokenSecret
from kubejit.clusters.scan.rbac import RbacIndex


class Severity(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return {"high": 3, "medium": 2, "low": 1}[self.value]


@dataclass(frozen=True)
class RuleInfo:
    id: str
    title: str
    #: How a message says it, after the subjects: "Group devs: <phrase> (ClusterRole x cluster-wide)".
    phrase: str
    #: Why it matters and what to do: shown in SARIF and the HTML report.
    help: str
    #: The usual severity (SARIF's default level); each finding carries its own.
    severity: Severity = Severity.HIGH


RULES: dict[str, RuleInfo] = {
    info.id: info
    for info in (
        RuleInfo(
            "cluster-admin",
            "Bound to cluster-admin (or an equivalent */*/* role)",
            "bound to cluster-admin or an equivalent role",
            "Holds every permission. Replace with a just-in-time grant; keep break-glass for emergencies.",
        ),
        RuleInfo(
            "wildcard-rule",
            "Bound to a role with wildcard verbs or resources",
            "role with wildcard verbs or resources",
            "`*` also grants resources and verbs added later. List the verbs and resources needed.",
        ),
        RuleInfo(
            "user-binding",
            "Standing access bound to a user",
            "standing access",
            "People hold access all the time. Let them request it through kubejit when they need it.",
            Severity.MEDIUM,
        ),
        RuleInfo(
            "group-binding",
            "Standing access bound to a group",
            "standing access",
            "IdP groups reach every cluster that trusts the IdP, and their members change outside "
            "Kubernetes. Grant through kubejit policy instead.",
            Severity.MEDIUM,
        ),
        RuleInfo(
            "legacy-token",
            "Long-lived ServiceAccount token Secret",
            "long-lived token",
            "These tokens never expire and are readable by anyone who can read Secrets in the "
            "namespace. Delete the Secret; use TokenRequest (projected tokens) instead.",
            Severity.MEDIUM,
        ),
        RuleInfo(
            "sa-cluster-write",
            "ServiceAccount with cluster-wide write",
            "can write in every namespace",
            "A compromised pod running as this account can change objects in every namespace. Bind "
            "per namespace, or narrow the role.",
        ),
        RuleInfo(
            "escalation-path",
            "Can escalate privilege",
            "can escalate",
            "bind, escalate and impersonate grant more than they say, and creating pods or reading "
            "Secrets in a privileged namespace yields its ServiceAccounts' tokens. Remove or grant "
            "just in time.",
        ),
        RuleInfo(
            "kubejit-guard-missing",
            "kubejit's broker without one of its admission policies",
            "not in force",
            "deploy/rbac.yaml installs the broker's RBAC with two admission policies: "
            "kubejit-broker-bindings (a stolen broker token can otherwise bind any role it may bind to "
            "anyone) and kubejit-grant-limits (a grant can otherwise leave itself standing access). "
            "Apply deploy/rbac.yaml again (or upgrade the chart).",
        ),
        RuleInfo(
            "unmanaged-binding",
            "Binding not made by kubejit in a namespace kubejit manages",
            "not made by kubejit",
            "Access to this namespace should go through kubejit grants; this binding bypasses them.",
            Severity.MEDIUM,
        ),
    )
}


#: The admission policies of deploy/rbac.yaml, which the broker's RBAC is never safe without.
GUARD_POLICIES = (GRANT_POLICY, BROKER_POLICY)


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    object: ObjectRef
    message: str
    subjects: tuple[Subject, ...] = ()
    role: ObjectRef | None = None
    #: Days since a token Secret was created (legacy-token only; None when unknown).
    age_days: int | None = None

    @property
    def sort_key(self) -> tuple[int, str, ObjectRef]:
        return (-self.severity.rank, self.rule, self.object)


@dataclass(frozen=True)
class ScanOptions:
    #: Namespaces whose access kubejit manages: any other binding there is reported.
    managed_namespaces: frozenset[str] = frozenset()
    #: Namespaces where creating pods or reading Secrets amounts to the cluster's own privileges.
    privileged_namespaces: frozenset[str] = frozenset({"kube-system"})
    #: Where kubejit keeps its per-grant ServiceAccounts (config ``grantNamespace``).
    grant_namespace: str = GRANT_NAMESPACE


@dataclass(frozen=True)
class ScanReport:
    cluster: str
    scanned_at: datetime
    counts: Mapping[str, int] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()

    def at_or_above(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity.rank >= severity.rank]

    def summary(self) -> dict[str, int]:
        return {s.value: sum(1 for f in self.findings if f.severity is s) for s in Severity}


def scan(
    snapshot: Snapshot, *, now: datetime, options: ScanOptions | None = None, index: RbacIndex | None = None
) -> ScanReport:
    """Every finding of ``snapshot``, most severe first."""
    options = options or ScanOptions()
    index = index or RbacIndex(snapshot)
    found: list[Finding] = []
    for binding in snapshot.bindings:
        found.extend(binding_findings(binding, index, options))
    found.extend(token_finding(secret, now=now) for secret in snapshot.token_secrets)
    found.extend(guard_findings(snapshot, index))
    return ScanReport(
        cluster=snapshot.cluster,
        scanned_at=now,
        counts=snapshot.counts(),
        findings=tuple(sorted(found, key=lambda f: f.sort_key)),
    )


def binding_findings(binding: Binding, index: RbacIndex, options: ScanOptions) -> Iterator[Finding]:
    rules = index.rules_for(binding)
    if is_recognised(binding, rules, grant_namespace=options.grant_namespace) or is_broker_binding(
        binding, rules
    ):
        return
    yield from _unmanaged(binding, options)
    if not binding.subjects:
        return
    privileged = binding.cluster_wide or binding.namespace in options.privileged_namespaces
    if _is_cluster_admin(binding, rules):
        yield _finding(binding, "cluster-admin", Severity.HIGH if privileged else Severity.MEDIUM)
    else:
        if any(_is_wildcard(rule) for rule in rules):
            yield _finding(binding, "wildcard-rule", Severity.HIGH if privileged else Severity.MEDIUM)
        yield from _cluster_write(binding, rules)
        yield from _escalation(binding, rules, options)
    yield from _people(binding)


def guard_findings(snapshot: Snapshot, index: RbacIndex) -> Iterator[Finding]:
    """Where the broker's RBAC is installed, each of its admission policies that is not in force
    (absent, or no binding enforces it); nothing when the policies could not be read."""
    admission = snapshot.admission
    if admission is None or not any(is_broker_binding(b, index.rules_for(b)) for b in snapshot.bindings):
        return
    for name in GUARD_POLICIES:
        if name in admission.names and name in admission.enforced:
            continue
        why = "is missing" if name not in admission.names else "has no binding that enforces it (Deny)"
        yield Finding(
            "kubejit-guard-missing",
            Severity.HIGH,
            ObjectRef("ValidatingAdmissionPolicy", name),
            f"kubejit's broker RBAC is installed, but its admission policy {name} {why}",
        )


def _finding(
    binding: Binding, rule: str, severity: Severity, *, subjects: tuple[Subject, ...] = (), detail: str = ""
) -> Finding:
    who = subjects or binding.subjects
    where = "cluster-wide" if binding.cluster_wide else f"in namespace {binding.namespace}"
    names = ", ".join(str(s) for s in who)
    message = f"{names}: {detail or RULES[rule].phrase} ({binding.role_ref} {where})"
    return Finding(rule, severity, binding.ref, message, subjects=who, role=binding.role_ref)


def _is_cluster_admin(binding: Binding, rules: tuple[Rule, ...]) -> bool:
    if binding.role_kind == "ClusterRole" and binding.role_name == "cluster-admin":
        return True
    return grants_everything(rules)


def _is_wildcard(rule: Rule) -> bool:
    """`*` verbs or resources on resource rules; non-resource URLs (`/healthz*`) are not a risk here."""
    return bool(rule.resources) and ("*" in rule.verbs or "*" in rule.resources)


def _cluster_write(binding: Binding, rules: tuple[Rule, ...]) -> Iterator[Finding]:
    if not binding.cluster_wide:
        return
    accounts = tuple(s for s in binding.subjects if s.kind == "ServiceAccount" or _is_sa_group(s))
    if accounts and escalation.grants_write(rules):
        yield _finding(binding, "sa-cluster-write", Severity.HIGH, subjects=accounts)


def _is_sa_group(subject: Subject) -> bool:
    return subject.kind == "Group" and subject.name.startswith("system:serviceaccounts")


def _escalation(binding: Binding, rules: tuple[Rule, ...], options: ScanOptions) -> Iterator[Finding]:
    paths = escalation.paths(binding, rules, privileged_namespaces=options.privileged_namespaces)
    if paths:
        severity = Severity.HIGH if any(p.severe for p in paths) else Severity.MEDIUM
        detail = "can " + ", ".join(p.text for p in paths)
        yield _finding(binding, "escalation-path", severity, detail=detail)


def _people(binding: Binding) -> Iterator[Finding]:
    for kind, rule in (("User", "user-binding"), ("Group", "group-binding")):
        who = tuple(s for s in binding.subjects if s.kind == kind)
        if not who:
            continue
        if any(reaches_everyone(s) for s in who):
            yield _finding(
                binding, rule, Severity.HIGH, subjects=who, detail="standing access for every identity in it"
            )
        else:
            severity = Severity.MEDIUM if binding.cluster_wide else Severity.LOW
            yield _finding(binding, rule, severity, subjects=who)


def _unmanaged(binding: Binding, options: ScanOptions) -> Iterator[Finding]:
    if binding.cluster_wide or binding.namespace not in options.managed_namespaces:
        return
    # Only called for bindings that are neither Kubernetes defaults nor kubejit grant bindings.
    message = (
        f"{binding.ref} grants {binding.role_ref} in namespace {binding.namespace}, which kubejit "
        "manages, but kubejit did not create it"
    )
    yield Finding(
        "unmanaged-binding", Severity.MEDIUM, binding.ref, message, binding.subjects, binding.role_ref
    )


def token_finding(secret: TokenSecret, *, now: datetime) -> Finding:
    age = None if secret.created is None else max(0, (now - secret.created).days)
    owner = f"ServiceAccount {secret.ref.namespace}/{secret.account or '?'}"
    when = "age unknown" if age is None else f"created {age} days ago"
    message = f"long-lived token Secret of {owner} ({when}); it never expires"
    subject = Subject("ServiceAccount", secret.account, secret.ref.namespace)
    return Finding("legacy-token", Severity.MEDIUM, secret.ref, message, (subject,), age_days=age)
