"""The policy's YAML reader: the node tree, typed access to it, and the rule pieces both loaders share.

People's rules are read in load.py, workloads in workload_load.py; both build on this module so that
neither imports the other's internals (load.py calls workload_load.py) and their errors read the same.
The parse step itself (``read_yaml``) is ``yamlsource.compose_yaml``, which the broker config uses too:
YAML aliases are refused in both, and a syntax error says file:line:column the same way.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import timedelta

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from kubejit.durations import format_duration, parse_duration
from kubejit.errors import InvalidInput, PolicyError
from kubejit.policy.evaluate import DEFAULT_DENY
from kubejit.policy.glob import DNS_LABEL_HINT, is_dns_label, is_name_pattern
from kubejit.policy.model import KUBEJIT_NAMESPACES
from kubejit.yamlsource import compose_yaml, position

TAG = "tag:yaml.org,2002:"
STR = TAG + "str"
INT = TAG + "int"
BOOL = TAG + "bool"


def read_yaml(text: str, *, source: str) -> Node | None:
    """The policy's node tree (None for an empty file); aliases and bad YAML are a ``PolicyError``."""
    return compose_yaml(text, source=source, what="policy", error=PolicyError)


def kind(node: Node) -> str:
    """What a node is, in words, for "must be a string, got a list"."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    tag = str(node.tag).removeprefix(TAG)
    names = {"str": "a string", "int": "a number", "float": "a number", "bool": "a boolean"}
    return names.get(tag, "nothing (null)" if tag == "null" else f"a value tagged {node.tag}")


def suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    """The " (did you mean 'x'?)" tail for a likely typo of one of ``choices``, else nothing."""
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Fields:
    """A YAML mapping's values by key, with the key nodes kept for pointing at a bad key."""

    node: MappingNode
    values: dict[str, Node]
    keys: dict[str, Node]

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def __getitem__(self, key: str) -> Node:
        return self.values[key]


class Reader:
    """Typed access to YAML nodes; every failure is a PolicyError that points at the node."""

    def __init__(self, source: str, *, reserved: frozenset[str] = KUBEJIT_NAMESPACES) -> None:
        self.source = source
        #: kubejit's own namespaces, which no allow rule may name (see ``granted_namespaces``).
        self.reserved = reserved

    def error(self, node: Node, message: str, hint: str) -> PolicyError:
        return PolicyError(f"{position(self.source, node.start_mark)}: {message}", hint=hint)

    def mapping(
        self, node: Node, what: str, *, known: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> Fields:
        if not isinstance(node, MappingNode):
            raise self.error(
                node, f"{what} must be a mapping, got {kind(node)}", f"Its keys: {', '.join(known)}."
            )
        fields = Fields(node, {}, {})
        for key_node, value_node in node.value:
            key = self.string(key_node, f"a key in {what}")
            if key not in known:
                raise self.error(
                    key_node,
                    f"unknown key {key!r} in {what}{suggest(key, known)}",
                    f"Known: {', '.join(known)}.",
                )
            if key in fields:
                raise self.error(key_node, f"duplicate key {key!r} in {what}", "Keep one of them.")
            fields.values[key] = value_node
            fields.keys[key] = key_node
        for key in required:
            if key not in fields:
                raise self.error(
                    node, f"{what} is missing the key {key!r}", f"Add `{key}:` (see docs/policy.md)."
                )
        return fields

    def string(self, node: Node, what: str) -> str:
        if isinstance(node, ScalarNode) and node.tag == STR:
            return str(node.value)
        hint = "Quote it: YAML reads yes/no/on/off/true/false and numbers as non-strings."
        raise self.error(node, f"{what} must be a string, got {kind(node)}", hint)

    def boolean(self, node: Node, what: str) -> bool:
        if isinstance(node, ScalarNode) and node.tag == BOOL:
            return str(node.value).lower() in ("true", "yes", "on")
        raise self.error(node, f"{what} must be true or false, got {kind(node)}", "Write true or false.")

    def integer(self, node: Node, what: str) -> int:
        if isinstance(node, ScalarNode) and node.tag == INT:
            try:
                return int(str(node.value))
            except ValueError:
                pass
        raise self.error(node, f"{what} must be a whole number, got {kind(node)}", "Write e.g. 1 or 2.")

    def duration(self, node: Node, what: str) -> timedelta:
        text = self.string(node, what)
        try:
            return parse_duration(text)
        except InvalidInput as e:
            hint = e.hint or "Use a duration such as 30m, 1h30m or 2h (at most 31d)."
            raise self.error(node, f"{what}: {e.message}", hint) from e

    def strings(self, node: Node, what: str) -> list[tuple[str, Node]]:
        """A non-empty list of distinct strings, each with its node."""
        if not isinstance(node, SequenceNode):
            raise self.error(node, f"{what} must be a list, got {kind(node)}", "Write e.g. [a, b].")
        items = [(self.string(item, f"an entry of {what}"), item) for item in node.value]
        if not items:
            raise self.error(node, f"{what} must not be empty", "List at least one entry, or remove the key.")
        seen: set[str] = set()
        for value, item in items:
            if value in seen:
                raise self.error(item, f"{value!r} appears twice in {what}", "Remove the duplicate.")
            seen.add(value)
        return items


def rule_name(
    reader: Reader, item: Node, fields: Fields, first_seen: dict[str, int], *, what: str, kind: str
) -> str:
    """A rule's name: a DNS label, not the reserved default, unique among ``first_seen`` (name → line)."""
    name = reader.string(fields["name"], f"{what}: name")
    if not is_dns_label(name) or name == DEFAULT_DENY:
        hint = f"{DEFAULT_DENY!r} is reserved." if name == DEFAULT_DENY else DNS_LABEL_HINT
        raise reader.error(fields["name"], f"invalid {kind} name {name!r}", hint)
    if name in first_seen:
        raise reader.error(
            fields["name"],
            f"duplicate {kind} name {name!r} (first defined on line {first_seen[name]})",
            "Decisions and audit events name the rule: make each name unique.",
        )
    first_seen[name] = item.start_mark.line + 1
    return name


def name_patterns(reader: Reader, fields: Fields, key: str, what: str) -> tuple[str, ...]:
    """Names or globs (clusters, namespaces) under ``key``: DNS labels that may use * and ?."""
    found = []
    for value, node in reader.strings(fields[key], f"{what}: {key}"):
        if not is_name_pattern(value):
            hint = DNS_LABEL_HINT + " Globs may use * and ?."
            raise reader.error(node, f"invalid name or pattern {value!r} in {what}: {key}", hint)
        found.append(value)
    return tuple(found)


def granted_namespaces(reader: Reader, fields: Fields, what: str) -> tuple[str, ...]:
    """The namespaces an allow (or workload) rule grants: patterns, none of them kubejit's own.

    A glob already stops short of them (``glob.matches_namespace``); naming one exactly is refused
    here, at load, because access to the broker's namespace is access to the broker's ServiceAccount,
    and through it to whatever the broker may bind anywhere.
    """
    granted = name_patterns(reader, fields, "namespaces", what)
    for value, node in reader.strings(fields["namespaces"], f"{what}: namespaces"):
        if value in reader.reserved:
            raise reader.error(
                node,
                f"{what} grants access to {value!r}, kubejit's own namespace (the broker's ServiceAccount "
                "or the grant ServiceAccounts live there)",
                "Remove it: kubejit never grants access to its brokerNamespace or grantNamespace "
                "(docs/policy.md); a deny rule may still name it.",
            )
    return granted


def default_within(
    reader: Reader, duration: Fields, maximum: timedelta, *, fallback: timedelta, what: str
) -> timedelta:
    """A rule's ``duration.default`` (or ``fallback``, capped at the max); never longer than ``maximum``."""
    if "default" not in duration:
        return min(fallback, maximum)
    default = reader.duration(duration["default"], f"{what}: duration default")
    if default > maximum:
        raise reader.error(
            duration["default"],
            f"{what}: default duration {format_duration(default)} is longer than max {format_duration(maximum)}",
            "Lower the default or raise the max.",
        )
    return default
