"""Fill the aggregated ClusterRoles (``admin``, ``edit``, ``view``) as kube-controller-manager would.

kube-apiserver creates these roles with an ``aggregationRule`` and *no rules*; a controller in
kube-controller-manager copies in the rules of every ClusterRole its selectors match. The harness runs
no controller-manager, so without this a RoleBinding to ``view`` would grant nothing. The control plane
applies it once at start-up: roles labelled for aggregation later (e.g. by a CRD install) are not
picked up. Pure functions over the JSON of ClusterRoles; the caller does the HTTP.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

ClusterRole = dict[str, Any]
PolicyRule = dict[str, Any]
_MAX_PASSES = 10  # aggregation chains are short (edit feeds admin); a cycle must still terminate


def _name(role: ClusterRole) -> str:
    return str(role["metadata"]["name"])


def selector_matches(labels: Mapping[str, str], selector: Mapping[str, Any]) -> bool:
    """A Kubernetes LabelSelector (matchLabels and matchExpressions) applied to ``labels``."""
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _rules_for(role: ClusterRole, roles: list[ClusterRole]) -> list[PolicyRule]:
    rules: list[PolicyRule] = []
    for selector in role["aggregationRule"].get("clusterRoleSelectors") or []:
        for other in roles:
            labels = other["metadata"].get("labels") or {}
            if _name(other) == _name(role) or not selector_matches(labels, selector):
                continue
            rules.extend(rule for rule in other.get("rules") or [] if rule not in rules)
    return rules


def aggregated_rules(roles: list[ClusterRole]) -> dict[str, list[PolicyRule]]:
    """The rules each aggregating role should carry, after repeating until nothing changes.

    Returns only the roles whose rules differ from what ``roles`` holds now.
    """
    current = sorted(copy.deepcopy(roles), key=_name)
    changed: dict[str, list[PolicyRule]] = {}
    for _ in range(_MAX_PASSES):
        updates = {
            _name(role): rules
            for role in current
            if role.get("aggregationRule")
            and (rules := _rules_for(role, current)) != (role.get("rules") or [])
        }
        if not updates:
            break
        for role in current:
            if _name(role) in updates:
                role["rules"] = updates[_name(role)]
        changed.update(updates)
    return changed
