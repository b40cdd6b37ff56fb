"""The policy's ``workloads:`` section (CI/CD token exchange) → ``WorkloadRule``s, with file:line:column errors.

Split from ``load.py`` to keep each module about one thing; both use the node reader in ``reader.py``,
so errors read the same. Each rule says which provider's claims it matches (``github:``, ``gitlab:`` or
``claims:`` for any other OIDC issuer) so claim names are checked here, at load, not at the first
pipeline run. Rules must be anchored on an immutable id (repository/owner id, project/namespace id):
names can be renamed and re-registered by someone else; ids cannot.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

from yaml.nodes import Node, ScalarNode, SequenceNode

from kubejit.durations import format_duration
from kubejit.policy.glob import DNS_LABEL_HINT, is_dns_label
from kubejit.policy.model import ClaimMatch, Provider, RoleRef, WorkloadRule
from kubejit.policy.reader import (
    BOOL,
    INT,
    STR,
    Fields,
    Reader,
    default_within,
    granted_namespaces,
    kind,
    name_patterns,
    rule_name,
    suggest,
)

GITHUB_CLAIMS = frozenset(
    {
        *("sub", "repository", "repository_id", "repository_owner", "repository_owner_id"),
        *("repository_visibility", "ref", "ref_type", "ref_protected", "environment"),
        *("job_workflow_ref", "job_workflow_sha", "workflow", "workflow_ref", "workflow_sha"),
        *("event_name", "actor", "actor_id", "head_ref", "base_ref", "runner_environment"),
        *("enterprise", "enterprise_id", "sha", "run_id", "run_number", "run_attempt"),
    }
)
GITLAB_CLAIMS = frozenset(
    {
        *("sub", "project_id", "project_path", "namespace_id", "namespace_path", "user_id"),
        *("user_login", "user_email", "pipeline_id", "pipeline_source", "job_id", "ref", "ref_type"),
        *("ref_protected", "ref_path", "environment", "environment_protected", "deployment_tier"),
        *("runner_id", "runner_environment", "ci_config_ref_uri", "ci_config_sha", "sha"),
        "project_visibility",
    }
)
#: The claims a rule must pin, per provider (at least one of them): ids survive renames, names do not.
ANCHORS: Mapping[str, tuple[str, ...]] = {
    "github": ("repository_id", "repository_owner_id"),
    "gitlab": ("project_id", "namespace_id"),
    "oidc": (),
}
#: Checked by the token verifier, never by a rule.
_REGISTERED = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti"})
_CLAIM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_CLAIM_VALUE = re.compile(r"[^\x00-\x1f\x7f]{1,512}")
_NUMERIC_ID = re.compile(r"[0-9]{1,32}")
_KEYS = ("name", "issuer", "github", "gitlab", "claims", "clusters", "namespaces", "roles", "duration")
#: The key a rule's claims sit under, and the provider it means.
_CLAIM_KEYS: Mapping[str, Provider] = {"github": "github", "gitlab": "gitlab", "claims": "oidc"}
DEFAULT_DURATION = timedelta(minutes=15)
#: A CI job that needs a cluster for longer than this should be split, not trusted longer.
MAX_WORKLOAD_DURATION = timedelta(hours=1)


def parse_workloads(reader: Reader, node: Node, roles: Mapping[str, RoleRef]) -> tuple[WorkloadRule, ...]:
    if not isinstance(node, SequenceNode):
        raise reader.error(
            node,
            f"workloads must be a list, got {kind(node)}",
            "Write workloads: [] or a list of rules.",
        )
    first_seen: dict[str, int] = {}
    rules = []
    for index, item in enumerate(node.value):
        what = f"workload rule #{index + 1}"
        fields = reader.mapping(item, what, known=_KEYS, required=("name", "issuer"))
        name = rule_name(reader, item, fields, first_seen, what=what, kind="workload rule")
        rules.append(_rule(reader, name, fields, roles))
    return tuple(rules)


def _rule(reader: Reader, name: str, fields: Fields, roles: Mapping[str, RoleRef]) -> WorkloadRule:
    what = f"workload rule {name!r}"
    issuer = reader.string(fields["issuer"], f"{what}: issuer")
    if not is_dns_label(issuer):
        raise reader.error(fields["issuer"], f"invalid issuer name {issuer!r} in {what}", DNS_LABEL_HINT)
    provider, claims = _claims(reader, fields, what)
    hint = "Workload rules name everything they grant; there is no implicit '*'."
    for key in ("clusters", "namespaces", "roles"):
        if key not in fields:
            raise reader.error(fields.node, f"{what} is missing the key {key!r}", hint)
    default, maximum = _durations(reader, fields, what)
    return WorkloadRule(
        name=name,
        issuer=issuer,
        provider=provider,
        claims=claims,
        clusters=name_patterns(reader, fields, "clusters", what),
        namespaces=granted_namespaces(reader, fields, what),
        roles=_roles(reader, fields, what, roles),
        default_duration=default,
        max_duration=maximum,
        source=f"{reader.source}:{fields.node.start_mark.line + 1}",
    )


def _claims(reader: Reader, fields: Fields, what: str) -> tuple[Provider, tuple[ClaimMatch, ...]]:
    present = [key for key in _CLAIM_KEYS if key in fields]
    if len(present) != 1:
        raise reader.error(
            fields.node,
            f"{what} must have exactly one of github:, gitlab: or claims:",
            "github: and gitlab: match those CI systems' job tokens; claims: any other OIDC issuer's.",
        )
    key = present[0]
    provider = _CLAIM_KEYS[key]
    node = fields[key]
    known = {"github": GITHUB_CLAIMS, "gitlab": GITLAB_CLAIMS}.get(provider)
    mapping = reader.mapping(
        node, f"{what}: {key}", known=tuple(sorted(known)) if known else _any_claim(node)
    )
    if not mapping.values:
        raise reader.error(node, f"{what}: {key} names no claims, so it would match any job", "Pin claims.")
    matches = tuple(_claim(reader, claim, mapping, what) for claim in mapping.values)
    anchors = ANCHORS[provider]
    if anchors and not any(claim in mapping for claim in anchors):
        raise reader.error(
            node,
            f"{what} pins none of {', '.join(anchors)}",
            "Pin the immutable id (names can be renamed and re-registered); e.g. repository_id: '123456'.",
        )
    return provider, matches


def _any_claim(node: Node) -> tuple[str, ...]:
    """For a generic issuer every well-formed claim name is known, except the verifier's own."""
    names = []
    for key_node, _ in getattr(node, "value", []):
        if isinstance(key_node, ScalarNode):
            value = str(key_node.value)
            if _CLAIM_NAME.fullmatch(value) and value not in _REGISTERED:
                names.append(value)
    return tuple(names) or ("sub",)


def _claim(reader: Reader, claim: str, mapping: Fields, what: str) -> ClaimMatch:
    node = mapping[claim]
    items = node.value if isinstance(node, SequenceNode) else [node]
    if not items:
        raise reader.error(node, f"{what}: claim {claim!r} lists no values", "List at least one value.")
    values = []
    for item in items:
        value = _scalar(reader, item, f"{what}: claim {claim!r}")
        exact = claim.endswith("_id")
        if exact and not _NUMERIC_ID.fullmatch(value):
            raise reader.error(
                item, f"{what}: {claim} must be a numeric id, got {value!r}", "Ids are exact: no globs."
            )
        if value in values:
            raise reader.error(item, f"{value!r} appears twice in {what}: {claim}", "Remove the duplicate.")
        values.append(value)
    return ClaimMatch(claim=claim, values=tuple(values))


def _scalar(reader: Reader, node: Node, what: str) -> str:
    """Claims are compared as text: YAML numbers and booleans are accepted and written as tokens carry them."""
    if isinstance(node, ScalarNode) and node.tag in (STR, INT, BOOL):
        text = str(node.value)
        if node.tag == BOOL:
            text = "true" if text.lower() in ("true", "yes", "on") else "false"
        if _CLAIM_VALUE.fullmatch(text):
            return text
    raise reader.error(node, f"{what} must be text, a number or true/false", "Quote the value.")


def _roles(reader: Reader, fields: Fields, what: str, roles: Mapping[str, RoleRef]) -> tuple[str, ...]:
    names = []
    for value, node in reader.strings(fields["roles"], f"{what}: roles"):
        role = roles.get(value)
        if role is None:
            known = ", ".join(sorted(roles)) or "none"
            raise reader.error(
                node,
                f"unknown role {value!r} in {what} (known: {known}){suggest(value, sorted(roles))}",
                "Name roles from the top-level roles: ('*' is not allowed for workloads).",
            )
        if role.cluster_scope:
            raise reader.error(
                node,
                f"{what} grants the cluster-wide role {value!r}; workloads get namespaced roles only",
                "Grant a namespaced role in the namespaces the job deploys to.",
            )
        names.append(value)
    return tuple(names)


def _durations(reader: Reader, fields: Fields, what: str) -> tuple[timedelta, timedelta]:
    if "duration" not in fields:
        return DEFAULT_DURATION, DEFAULT_DURATION
    duration = reader.mapping(fields["duration"], f"{what}: duration", known=("default", "max"))
    maximum = DEFAULT_DURATION
    if "max" in duration:
        maximum = reader.duration(duration["max"], f"{what}: duration max")
        if maximum > MAX_WORKLOAD_DURATION:
            raise reader.error(
                duration["max"],
                f"{what}: max {format_duration(maximum)} is longer than {format_duration(MAX_WORKLOAD_DURATION)}",
                "A CI job's access should end with the job; split long jobs.",
            )
    return default_within(reader, duration, maximum, fallback=DEFAULT_DURATION, what=what), maximum
