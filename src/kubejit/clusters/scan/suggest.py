"""A kubejit policy that would replace the standing user and group bindings a scan found, for review.

Each standing binding to people becomes a rule that lets the same users and groups *request* the same
role in the same namespaces (or cluster-wide), with approval, a reason and a short duration. Subjects
with identical access share a rule. Kubernetes' own identities (``system:``), ServiceAccounts
(workloads, not people) and names a policy cannot hold are left out, with a comment saying so. The text
is meant to be read and edited: the approver group is a placeholder, and each rule says which bindings
it replaces. ``kubejit.policy.load.parse_policy`` accepts the result as it is.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml

from kubejit.clusters.scan.defaults import is_recognised
from kubejit.clusters.scan.model import Binding, ObjectRef, Snapshot, Subject
from kubejit.policy.model import KUBEJIT_NAMESPACES

#: Placeholder: who approves the grants. Replace it with a real group of approvers.
APPROVER_GROUP = "platform-admins"
_LABEL_MAX = 63
_PRINCIPAL = re.compile(r"\S{1,256}")


@dataclass(frozen=True, order=True)
class _Access:
    """What a subject holds through standing bindings: one role, cluster-wide or per namespace."""

    role_kind: str
    role_name: str
    cluster_wide: bool


@dataclass
class _Draft:
    access: _Access
    namespaces: tuple[str, ...]
    users: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    replaces: set[ObjectRef] = field(default_factory=set)


def dns_label(text: str, *, fallback: str) -> str:
    """``text`` made a DNS-1123 label (what policy role, rule and cluster names must be)."""
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:_LABEL_MAX].strip("-")
    return label or fallback


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        suffix = f"-{n}"
        candidate, n = name[: _LABEL_MAX - len(suffix)].rstrip("-") + suffix, n + 1
    taken.add(candidate)
    return candidate


def _people(binding: Binding, skipped: set[str]) -> Iterable[Subject]:
    for subject in binding.subjects:
        if subject.kind not in ("User", "Group"):
            continue
        if (
            subject.name.startswith("system:")
            or subject.name == "*"
            or not _PRINCIPAL.fullmatch(subject.name)
        ):
            skipped.add(f"{subject} ({binding.ref})")
            continue
        yield subject


def _drafts(snapshot: Snapshot, skipped: set[str], reserved: frozenset[str]) -> list[_Draft]:
    """Standing access per subject, then subjects with identical access merged into one draft rule."""
    held: dict[tuple[Subject, _Access], set[str]] = defaultdict(set)
    sources: dict[tuple[Subject, _Access], set[ObjectRef]] = defaultdict(set)
    for binding in snapshot.bindings:
        if is_recognised(binding):
            continue
        if not binding.cluster_wide and binding.namespace in reserved:
            # A policy may not grant access to kubejit's own namespaces: remove such bindings, do not replace them.
            skipped.add(f"{binding.ref} (in kubejit's own namespace: no policy may grant access there)")
            continue
        access = _Access(binding.role_kind, binding.role_name, binding.cluster_wide)
        for subject in _people(binding, skipped):
            if not binding.cluster_wide:
                held[subject, access].add(binding.namespace)
            sources[subject, access].add(binding.ref)
    merged: dict[tuple[_Access, tuple[str, ...]], _Draft] = {}
    for (subject, access), refs in sorted(sources.items()):
        namespaces = tuple(sorted(held[subject, access]))
        draft = merged.setdefault((access, namespaces), _Draft(access, namespaces))
        (draft.users if subject.kind == "User" else draft.groups).add(subject.name)
        draft.replaces.update(refs)
    return list(merged.values())


def _role_names(drafts: list[_Draft]) -> dict[_Access, str]:
    names: dict[_Access, str] = {}
    taken: set[str] = set()
    for access in sorted(
        {d.access for d in drafts}, key=lambda a: (a.role_name, a.role_kind, a.cluster_wide)
    ):
        base = dns_label(access.role_name, fallback="role")
        if access.cluster_wide:
            base = dns_label(f"{base}-cluster-wide", fallback="role")
        names[access] = _unique(base, taken)
    return names


def _role_entry(access: _Access) -> dict[str, Any]:
    if access.role_kind == "Role":
        return {"role": access.role_name}
    entry: dict[str, Any] = {"clusterRole": access.role_name}
    if access.cluster_wide:
        entry["clusterScope"] = True
    return entry


def _rule(draft: _Draft, *, name: str, role: str, cluster: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": name}
    if draft.users:
        rule["users"] = sorted(draft.users)
    if draft.groups:
        rule["groups"] = sorted(draft.groups)
    rule["clusters"] = [cluster]
    if not draft.access.cluster_wide:
        rule["namespaces"] = list(draft.namespaces)
    rule["roles"] = [role]
    # Cluster-wide access is the riskier kind: shorter, and two people must agree.
    wide = draft.access.cluster_wide
    rule["duration"] = {"default": "30m", "max": "1h"} if wide else {"default": "1h", "max": "4h"}
    rule["approval"] = {"approvers": 2 if wide else 1, "groups": [APPROVER_GROUP]}
    rule["reason"] = "required"
    return rule


def _comment(text: str) -> str:
    """One comment line: names come from the cluster, and a newline in one must not become YAML."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _dump(value: Any, *, indent: int = 0) -> list[str]:
    text = yaml.safe_dump(value, sort_keys=False, default_flow_style=None, allow_unicode=True, width=1000)
    return [" " * indent + line for line in text.splitlines()]


def suggest_policy(
    snapshot: Snapshot,
    *,
    cluster: str,
    generated_at: datetime,
    reserved_namespaces: frozenset[str] = KUBEJIT_NAMESPACES,
) -> str:
    """Policy YAML replacing the standing user and group bindings of ``snapshot`` (see module doc).

    Bindings in ``reserved_namespaces`` (the broker's and the grant namespace) are listed as skipped:
    the policy loader refuses rules granting access there.
    """
    skipped: set[str] = set()
    drafts = _drafts(snapshot, skipped, reserved_namespaces)
    roles = _role_names(drafts)
    cluster_name = dns_label(cluster, fallback="*")
    lines = [
        _comment(f"# kubejit policy suggested by `kubejit scan --suggest-policy` for cluster {cluster!r}"),
        f"# at {generated_at.isoformat(timespec='seconds')}. REVIEW IT before use: it lets the users and",
        "# groups below REQUEST what they hold today, with approval; then delete the bindings it names.",
        f"# '{APPROVER_GROUP}' is a placeholder for your approvers; principal names may need the",
        "# issuer prefix kubejit uses (e.g. oidc:alice). Reference: docs/policy.md.",
        *(_comment(f"# skipped: {item}") for item in sorted(skipped)),
    ]
    lines += _dump({"roles": {roles[a]: _role_entry(a) for a in sorted(roles, key=roles.__getitem__)}})
    if not drafts:
        lines += ["# No standing user or group bindings were found: nothing to replace.", "rules: []"]
        return "\n".join(lines) + "\n"
    lines.append("rules:")
    taken: set[str] = set()
    for draft in sorted(drafts, key=lambda d: (roles[d.access], d.namespaces)):
        name = _unique(dns_label(roles[draft.access], fallback="rule")[:55] + "-jit", taken)
        lines += [_comment(f"  # replaces {ref}") for ref in sorted(draft.replaces)]
        lines += _dump([_rule(draft, name=name, role=roles[draft.access], cluster=cluster_name)], indent=2)
    return "\n".join(lines) + "\n"
