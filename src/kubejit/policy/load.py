"""Policy YAML -> frozen ``Policy``, strictly, with file:line:column in every error.

YAML is read as a node tree (``reader.read_yaml``) rather than plain data so every value keeps its position:
whoever fixes a policy needs "policy.yaml:12:5: unknown role 'admn' ...", not a traceback. Validation is
written over the nodes for the same reason (pydantic's error locations would have to be mapped back to
positions and its messages reworded). The schema is documented in docs/policy.md. The only I/O here is
``load_policy_file``; ``parse_policy`` takes text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from kubejit.errors import PolicyError
from kubejit.policy.glob import DNS_LABEL_HINT, is_dns_label
from kubejit.policy.model import KUBEJIT_NAMESPACES, SYSTEM_NAMESPACES, Policy, RoleRef, Rule, WorkloadRule
from kubejit.policy.reader import (
    STR,
    Fields,
    Reader,
    default_within,
    granted_namespaces,
    kind,
    name_patterns,
    read_yaml,
    rule_name,
    suggest,
)
from kubejit.yamlsource import MAX_YAML_BYTES, read_text

#: A policy is written by hand; anything bigger is a mistake (or an attack on the parser).
MAX_POLICY_BYTES = MAX_YAML_BYTES

_TOP_KEYS = ("roles", "adminGroups", "rules", "workloads")
_ROLE_KEYS = ("clusterRole", "role", "clusterScope")
_DENY_KEYS = ("name", "effect", "users", "groups", "clusters", "namespaces", "roles")
_RULE_KEYS = (
    *_DENY_KEYS,
    *("duration", "approval", "reason", "ticket", "breakGlass", "reviewers", "extendable", "pendingTimeout"),
)
_DEFAULT_DURATION = timedelta(hours=1)
_DEFAULT_MAX_DURATION = timedelta(hours=4)
_DEFAULT_PENDING_TIMEOUT = timedelta(hours=1)
_PRINCIPAL = re.compile(r"\S{1,256}")
# Kubernetes RBAC names are path segments: no '/', no '%', not '.' or '..'.
_RBAC_NAME = re.compile(r"[^\s/%]{1,253}")


def load_policy_file(
    path: str | os.PathLike[str], *, protected_namespaces: frozenset[str] = KUBEJIT_NAMESPACES
) -> Policy:
    """Read and parse a policy file; the one function here that touches the file system."""
    text = read_text(
        path,
        what="policy",
        error=PolicyError,
        missing_hint="Check the policy path in the kubejit settings; src/kubejit/examples/policy.yaml is a start.",
    )
    return parse_policy(text, source=str(Path(path)), protected_namespaces=protected_namespaces)


def parse_policy(
    text: str, *, source: str = "policy.yaml", protected_namespaces: frozenset[str] = KUBEJIT_NAMESPACES
) -> Policy:
    """Parse policy YAML; raise ``PolicyError`` ("file:line:column: what; hint") on the first problem.

    ``protected_namespaces`` are kubejit's own (the broker's and the grant namespace; the defaults
    unless the broker config moves them). They join the system namespaces that no namespace glob ever
    matches, and unlike those an allow rule may not name them either: nobody gets access there.
    """
    root = read_yaml(text, source=source)
    reader = Reader(source, reserved=protected_namespaces)
    if root is None:
        raise PolicyError(
            f"{source}:1:1: the policy is empty",
            hint="A policy needs at least `roles:` and `rules:`; `rules: []` denies every request.",
        )
    top = reader.mapping(root, "the policy", known=_TOP_KEYS, required=("roles", "rules"))
    roles = _roles(reader, top["roles"])
    admin_groups = _names(reader, top, "adminGroups", "adminGroups") if "adminGroups" in top else ()
    return Policy(
        roles=MappingProxyType(roles),
        rules=_rules(reader, top["rules"], roles),
        admin_groups=frozenset(admin_groups),
        protected_namespaces=SYSTEM_NAMESPACES | protected_namespaces,
        workloads=_workloads(reader, top, roles),
    )


def _workloads(reader: Reader, top: Fields, roles: Mapping[str, RoleRef]) -> tuple[WorkloadRule, ...]:
    """CI/CD workload rules (docs/ci.md); parsed in their own module, which reuses this one's reader."""
    if "workloads" not in top:
        return ()
    from kubejit.policy.workload_load import parse_workloads

    return parse_workloads(reader, top["workloads"], roles)


@dataclass(frozen=True)
class _Scope:
    clusters: tuple[str, ...]
    roles: tuple[str, ...]
    namespaces: tuple[str, ...]


def _names(reader: Reader, fields: Fields, key: str, what: str) -> tuple[str, ...]:
    """User or group names: any non-blank text without spaces (issuers decide their format)."""
    names = []
    for value, node in reader.strings(fields[key], what):
        if not _PRINCIPAL.fullmatch(value):
            raise reader.error(node, f"invalid name {value!r} in {what}", "Names have no spaces.")
        names.append(value)
    return tuple(names)


def _roles(reader: Reader, node: Node) -> dict[str, RoleRef]:
    if not isinstance(node, MappingNode):
        raise reader.error(
            node,
            f"roles must be a mapping of role names, got {kind(node)}",
            "e.g. roles: {view: {clusterRole: view}}",
        )
    roles: dict[str, RoleRef] = {}
    for key_node, value_node in node.value:
        name = reader.string(key_node, "a role name")
        if not is_dns_label(name):
            raise reader.error(key_node, f"invalid role name {name!r}", DNS_LABEL_HINT)
        if name in roles:
            raise reader.error(key_node, f"role {name!r} is defined twice", "Keep one definition.")
        roles[name] = _role(reader, name, value_node)
    return roles


def _role(reader: Reader, name: str, node: Node) -> RoleRef:
    what = f"role {name!r}"
    fields = reader.mapping(node, what, known=_ROLE_KEYS)
    kinds = [key for key in ("clusterRole", "role") if key in fields]
    if len(kinds) != 1:
        raise reader.error(
            node,
            f"{what} must have exactly one of clusterRole or role",
            "clusterRole: view binds the ClusterRole 'view'; role: ops binds the Role 'ops' per namespace.",
        )
    key = kinds[0]
    ref_name = reader.string(fields[key], f"{what}: {key}")
    if not _RBAC_NAME.fullmatch(ref_name) or ref_name in (".", ".."):
        raise reader.error(
            fields[key], f"invalid {key} name {ref_name!r} in {what}", "Use the RBAC object's name."
        )
    cluster_scope = "clusterScope" in fields and reader.boolean(
        fields["clusterScope"], f"{what}: clusterScope"
    )
    if cluster_scope and key == "role":
        raise reader.error(
            fields.keys["clusterScope"],
            f"{what} is a namespaced Role and cannot be bound cluster-wide",
            "Use clusterRole: with clusterScope: true for cluster-wide access.",
        )
    ref_kind: Literal["ClusterRole", "Role"] = "ClusterRole" if key == "clusterRole" else "Role"
    return RoleRef(name=name, kind=ref_kind, ref_name=ref_name, cluster_scope=cluster_scope)


def _rules(reader: Reader, node: Node, roles: Mapping[str, RoleRef]) -> tuple[Rule, ...]:
    if not isinstance(node, SequenceNode):
        raise reader.error(
            node, f"rules must be a list, got {kind(node)}", "`rules: []` denies every request."
        )
    first_seen: dict[str, int] = {}
    rules = []
    for index, item in enumerate(node.value):
        fields = reader.mapping(item, f"rule #{index + 1}", known=_RULE_KEYS, required=("name",))
        name = rule_name(reader, item, fields, first_seen, what=f"rule #{index + 1}", kind="rule")
        rules.append(_rule(reader, name, fields, roles))
    return tuple(rules)


def _rule(reader: Reader, name: str, fields: Fields, roles: Mapping[str, RoleRef]) -> Rule:
    what = f"rule {name!r}"
    effect = _effect(reader, fields, what)
    users, groups = _who(reader, fields, what)
    scope = _scope(reader, fields, what, roles, deny=effect == "deny")
    source = f"{reader.source}:{fields.node.start_mark.line + 1}"
    rule = Rule(
        name=name,
        effect=effect,
        users=users,
        groups=groups,
        clusters=scope.clusters,
        namespaces=scope.namespaces,
        roles=scope.roles,
        source=source,
    )
    if effect == "deny":
        extra = [key for key in fields.values if key not in _DENY_KEYS]
        if extra:
            raise reader.error(
                fields.keys[extra[0]],
                f"{extra[0]!r} has no meaning in deny {what}",
                f"A deny rule takes only {', '.join(_DENY_KEYS)}.",
            )
        return rule
    return _with_terms(reader, fields, what, rule)


def _effect(reader: Reader, fields: Fields, what: str) -> Literal["allow", "deny"]:
    if "effect" not in fields:
        return "allow"
    effect = reader.string(fields["effect"], f"{what}: effect")
    if effect == "allow":
        return "allow"
    if effect == "deny":
        return "deny"
    choices = ["allow", "deny"]
    raise reader.error(
        fields["effect"],
        f"{what}: effect must be allow or deny, not {effect!r}{suggest(effect, choices)}",
        "Omit effect for an allow rule.",
    )


def _who(reader: Reader, fields: Fields, what: str) -> tuple[frozenset[str], frozenset[str]]:
    users = _names(reader, fields, "users", f"{what}: users") if "users" in fields else ()
    groups = _names(reader, fields, "groups", f"{what}: groups") if "groups" in fields else ()
    if "*" in groups:
        raise reader.error(
            fields["groups"], f"{what}: '*' is not a group", "Use users: ['*'] to mean anyone."
        )
    if not users and not groups:
        raise reader.error(
            fields.node,
            f"{what} names no users or groups, so it applies to nobody",
            "Add groups: [...], users: [...], or users: ['*'] for anyone.",
        )
    return frozenset(users), frozenset(groups)


def _require(reader: Reader, fields: Fields, key: str, what: str, hint: str) -> None:
    if key not in fields:
        raise reader.error(fields.node, f"allow {what} is missing the key {key!r}", hint)


def _scope(reader: Reader, fields: Fields, what: str, roles: Mapping[str, RoleRef], *, deny: bool) -> _Scope:
    """Clusters, roles and namespaces; an allow rule must spell all three out (no implicit '*')."""
    if not deny:
        _require(reader, fields, "clusters", what, "Add clusters: [...]; ['*'] means every cluster.")
        _require(reader, fields, "roles", what, "Add roles: [...] naming roles from the top-level roles:.")
    clusters = name_patterns(reader, fields, "clusters", what) if "clusters" in fields else ("*",)
    role_names = _rule_roles(reader, fields, what, roles) if "roles" in fields else ("*",)
    cluster_wide = [n for n in role_names if n != "*" and roles[n].cluster_scope]
    if deny or not cluster_wide:
        if not deny:
            _require(
                reader, fields, "namespaces", what, "Add namespaces: [...]; ['*'] means any unprotected one."
            )
        if deny:
            namespaces = (
                name_patterns(reader, fields, "namespaces", what) if "namespaces" in fields else ("*",)
            )
        else:
            namespaces = granted_namespaces(reader, fields, what)
        return _Scope(clusters, role_names, namespaces)
    if len(cluster_wide) != len(role_names):
        raise reader.error(
            fields["roles"],
            f"{what} mixes the cluster-wide role {cluster_wide[0]!r} with namespaced roles",
            "Put cluster-wide roles (clusterScope: true) in a rule of their own.",
        )
    if "namespaces" in fields:
        raise reader.error(
            fields.keys["namespaces"],
            f"{what} grants the cluster-wide role {cluster_wide[0]!r}, which namespaces cannot limit",
            "Remove namespaces: from this rule.",
        )
    return _Scope(clusters, role_names, ())


def _rule_roles(reader: Reader, fields: Fields, what: str, roles: Mapping[str, RoleRef]) -> tuple[str, ...]:
    known = sorted(roles)
    names = []
    for value, node in reader.strings(fields["roles"], f"{what}: roles"):
        if value != "*" and value not in roles:
            raise reader.error(
                node,
                f"unknown role {value!r} in {what} (known: {', '.join(known) or 'none'}){suggest(value, known)}",
                "Define the role under the top-level roles:, or fix the name.",
            )
        names.append(value)
    return tuple(names)


def _with_terms(reader: Reader, fields: Fields, what: str, rule: Rule) -> Rule:
    """Add the constraints and approval of an allow rule."""
    break_glass = "breakGlass" in fields and reader.boolean(fields["breakGlass"], f"{what}: breakGlass")
    default, maximum = _durations(reader, fields, what)
    approvals, approver_groups = _approval(reader, fields, what, break_glass=break_glass)
    ticket = _ticket(reader, fields, what)
    extendable = "extendable" in fields and reader.boolean(fields["extendable"], f"{what}: extendable")
    pending = _DEFAULT_PENDING_TIMEOUT
    if "pendingTimeout" in fields:
        pending = reader.duration(fields["pendingTimeout"], f"{what}: pendingTimeout")
    return replace(
        rule,
        default_duration=default,
        max_duration=maximum,
        approvals_required=approvals,
        approver_groups=approver_groups,
        require_reason=_reason(reader, fields, what, break_glass=break_glass),
        ticket_pattern=ticket,
        break_glass=break_glass,
        reviewers=_reviewers(reader, fields, what, break_glass=break_glass),
        extendable=extendable,
        pending_timeout=pending,
    )


def _reviewers(reader: Reader, fields: Fields, what: str, *, break_glass: bool) -> frozenset[str]:
    """Groups that review a break-glass rule's uses afterwards: named like approver groups."""
    if "reviewers" not in fields:
        return frozenset()
    if not break_glass:
        raise reader.error(
            fields.keys["reviewers"],
            f"{what}: reviewers is only for break-glass rules (their uses are reviewed afterwards)",
            "Add breakGlass: true, or name who approves beforehand under approval: groups.",
        )
    groups = _names(reader, fields, "reviewers", f"{what}: reviewers")
    if "*" in groups:
        raise reader.error(
            fields["reviewers"],
            f"{what}: '*' is not a group",
            "Name the groups that review, e.g. [security].",
        )
    return frozenset(groups)


def _durations(reader: Reader, fields: Fields, what: str) -> tuple[timedelta, timedelta]:
    if "duration" not in fields:
        return _DEFAULT_DURATION, _DEFAULT_MAX_DURATION
    duration = reader.mapping(
        fields["duration"], f"{what}: duration", known=("default", "max"), required=("max",)
    )
    maximum = reader.duration(duration["max"], f"{what}: duration max")
    return default_within(reader, duration, maximum, fallback=_DEFAULT_DURATION, what=what), maximum


def _approval(reader: Reader, fields: Fields, what: str, *, break_glass: bool) -> tuple[int, frozenset[str]]:
    if break_glass:
        if "approval" in fields and not _is_auto(fields["approval"]):
            raise reader.error(
                fields["approval"],
                f"break-glass {what} cannot require approvals: break-glass is approved at once and audited",
                "Remove approval: or write approval: auto.",
            )
        return 0, frozenset()
    _require(
        reader, fields, "approval", what, "Add approval: auto, or approval: {approvers: 1, groups: [sre]}."
    )
    node = fields["approval"]
    if _is_auto(node):
        return 0, frozenset()
    if isinstance(node, ScalarNode) and node.tag == STR:
        raise reader.error(
            node,
            f"{what}: approval must be auto or a mapping, not {node.value!r}{suggest(str(node.value), ['auto'])}",
            "Write approval: auto, or approval: {approvers: 1, groups: [sre]}.",
        )
    approval = reader.mapping(
        node, f"{what}: approval", known=("approvers", "groups"), required=("approvers",)
    )
    count = reader.integer(approval["approvers"], f"{what}: approval approvers")
    if count < 0:
        raise reader.error(
            approval["approvers"], f"{what}: approvers must be 0 or more, not {count}", "0 means auto."
        )
    groups = _names(reader, approval, "groups", f"{what}: approval groups") if "groups" in approval else ()
    if count > 0 and not groups:
        raise reader.error(
            approval.node,
            f"{what} needs {count} approver(s) but names no approver groups",
            "Add groups: [...] under approval: to say who may approve.",
        )
    return count, frozenset(groups)


def _is_auto(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == STR and node.value == "auto"


def _reason(reader: Reader, fields: Fields, what: str, *, break_glass: bool) -> bool:
    if "reason" not in fields:
        return break_glass
    value = reader.string(fields["reason"], f"{what}: reason")
    if value not in ("required", "optional"):
        choices = ["required", "optional"]
        raise reader.error(
            fields["reason"],
            f"{what}: reason must be required or optional, not {value!r}{suggest(value, choices)}",
            "Omit reason: to make it optional.",
        )
    if break_glass and value == "optional":
        raise reader.error(
            fields["reason"],
            f"break-glass {what} must require a reason",
            "Remove reason: or write reason: required.",
        )
    return value == "required"


def _ticket(reader: Reader, fields: Fields, what: str) -> str | None:
    if "ticket" not in fields:
        return None
    pattern = reader.string(fields["ticket"], f"{what}: ticket")
    try:
        re.compile(pattern)
    except re.error as e:
        raise reader.error(
            fields["ticket"],
            f"{what}: ticket pattern {pattern!r} is not a valid regular expression: {e.msg} at position {e.pos}",
            "Quote the pattern in single quotes so YAML keeps backslashes, e.g. '^OPS-[0-9]+$'.",
        ) from e
    if not pattern:
        raise reader.error(
            fields["ticket"], f"{what}: ticket pattern is empty", "Remove ticket: or give a pattern."
        )
    return pattern
