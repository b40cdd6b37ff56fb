"""kubejit's own broker RBAC (deploy/rbac.yaml): on every cluster kubejit serves, so never a finding.

The broker's ServiceAccount may create RoleBindings everywhere and ``bind`` a few ClusterRoles: read
naively, that is a ServiceAccount with cluster-wide write and an escalation path. It is the least
privilege a broker needs (an admission policy confines it further), and an operator applied it on
purpose. So the scanner compares each binding with the manifest shipped in this package (the optional,
commented-out cluster-scope part included) and recognises it only when everything matches: the
binding's name and kind, its role, its one subject ``kubejit/kubejit-broker``, and every rule of the
role. The one thing operators edit, the ``resourceNames`` of the ``bind`` rules (kept in sync with
the policy's roles), may name other roles, but never ``*`` and never no role at all (= every role). A
broker role widened in any other way is reported like any other binding.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from kubejit.clusters.bootstrap import BROKER_ACCOUNT, BROKER_NAMESPACE, rbac_manifest
from kubejit.clusters.scan.model import RBAC_GROUP, Binding, Rule, Subject, parse_binding, parse_role

BROKER_SUBJECT = Subject("ServiceAccount", BROKER_ACCOUNT, BROKER_NAMESPACE)
_BINDING_KINDS = ("ClusterRoleBinding", "RoleBinding")
_ROLE_KINDS = ("ClusterRole", "Role")
_OPTIONAL_MARKER = "# OPTIONAL"


@dataclass(frozen=True)
class BrokerBinding:
    """One binding of the manifest and the rules of the role it grants."""

    kind: str
    name: str
    role_kind: str
    role_name: str
    rules: frozenset[Rule]


def _documents(manifest: str) -> Iterator[dict[str, Any]]:
    """The manifest's documents, then the optional ones it ships commented out (``# `` stripped)."""
    active, _, optional = manifest.partition(_OPTIONAL_MARKER)
    _prose, _, commented = optional.partition("\n# ---\n")  # its documents start at the first `# ---`
    uncommented = "\n".join(line.removeprefix("#").removeprefix(" ") for line in commented.splitlines())
    for text in (active, uncommented):
        yield from (doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict) and doc.get("kind"))


def broker_bindings(manifest: str) -> dict[tuple[str, str], BrokerBinding]:
    """(kind, name) of each binding → what the manifest says it binds; parsed from ``manifest`` (deploy/rbac.yaml)."""
    documents = list(_documents(manifest))
    rules = {
        (doc["kind"], doc["metadata"]["name"]): frozenset(parse_role(doc["kind"], doc).rules)
        for doc in documents
        if doc["kind"] in _ROLE_KINDS
    }
    found: dict[tuple[str, str], BrokerBinding] = {}
    for doc in documents:
        if doc["kind"] not in _BINDING_KINDS:
            continue
        binding = parse_binding(doc["kind"], doc)
        role_rules = rules[binding.role_kind, binding.role_name]
        found[binding.ref.kind, binding.ref.name] = BrokerBinding(
            doc["kind"], binding.ref.name, binding.role_kind, binding.role_name, role_rules
        )
    return found


@functools.cache
def shipped_broker_bindings() -> dict[tuple[str, str], BrokerBinding]:
    """The broker bindings of the manifest this kubejit ships (read once)."""
    return broker_bindings(rbac_manifest())


def _explicit_bind(rule: Rule) -> bool:
    """A ``bind`` rule on named roles only: the part of the manifest operators are told to edit."""
    return (
        rule.verbs == {"bind"}
        and rule.api_groups == {RBAC_GROUP}
        and bool(rule.resources)
        and rule.resources <= {"clusterroles", "roles"}
        and bool(rule.resource_names)
        and "*" not in rule.resource_names
        and not rule.non_resource_urls
    )


def is_broker_binding(
    binding: Binding,
    rules: tuple[Rule, ...],
    *,
    shipped: dict[tuple[str, str], BrokerBinding] | None = None,
) -> bool:
    """``binding`` is the broker's, as deploy/rbac.yaml makes it, and ``rules`` (its role's) no wider."""
    table = shipped if shipped is not None else shipped_broker_bindings()
    known = table.get((binding.ref.kind, binding.ref.name))
    if known is None:
        return False
    if (binding.role_kind, binding.role_name) != (known.role_kind, known.role_name):
        return False
    if binding.subjects != (BROKER_SUBJECT,):
        return False
    return all(rule in known.rules or _explicit_bind(rule) for rule in rules)
