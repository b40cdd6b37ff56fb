"""YAML read with positions, so config and policy errors can say file:line:column.

``compose_yaml`` is the one parse step of the broker config and the policy (``policy/reader.py``):
both refuse YAML aliases and word syntax errors the same way. PyYAML's composed node tree keeps
marks; ``locate`` walks it along a pydantic error location.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError

from kubejit.errors import ConfigError

MAX_YAML_BYTES = 1024 * 1024


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader without aliases: one alias can fan a node out exponentially, and hand-written files
    (the broker config, the policy) need none; an anchor alone is harmless and stays allowed."""

    def __init__(self, stream: str, *, what: str) -> None:
        super().__init__(stream)
        self.what = what

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            # check_event has just parsed the alias into current_event (peek_event is untyped).
            mark = self.current_event.start_mark
            raise ComposerError(None, None, f"aliases (*name) are not allowed in {self.what}", mark)
        return super().compose_node(parent, index)


def position(source: str, mark: yaml.Mark | None) -> str:
    """``file:line:column`` (1-based) for a PyYAML mark: the one place such a position is written."""
    return _at(source, mark.line + 1, mark.column + 1) if mark is not None else source


def _at(source: str, line: int, column: int) -> str:
    return f"{source}:{line}:{column}"


def compose_yaml(
    text: str,
    *,
    source: str,
    what: str = "config",
    error: type[ConfigError] = ConfigError,
    aliases: bool = False,
) -> yaml.Node | None:
    """The node tree of one YAML document (None if empty): the parse step of every hand-written file.

    Over 1 MiB, bad syntax, more than one document, nesting too deep and (unless ``aliases``) any
    alias are an ``error`` naming ``source`` and, where there is one, line and column.
    """
    return _parse(text, source=source, what=what, error=error, aliases=aliases, construct=False)[1]


def parse_yaml(
    text: str,
    *,
    source: str,
    what: str = "config",
    error: type[ConfigError] = ConfigError,
    aliases: bool = False,
) -> tuple[Any, yaml.Node | None]:
    """Like ``compose_yaml``, plus the plain data built from the same parse (for pydantic)."""
    return _parse(text, source=source, what=what, error=error, aliases=aliases, construct=True)


def _parse(
    text: str, *, source: str, what: str, error: type[ConfigError], aliases: bool, construct: bool
) -> tuple[Any, yaml.Node | None]:
    if len(text.encode()) > MAX_YAML_BYTES:
        raise error(
            f"{source}: the {what} is larger than 1 MiB",
            hint="It is written by hand; is this the right file?",
        )
    loader = yaml.SafeLoader(text) if aliases else _NoAliasLoader(text, what=f"the {what}")
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if construct and node is not None else None
    except yaml.MarkedYAMLError as e:
        problem = e.problem or e.context or "syntax error"
        raise error(
            f"{position(source, e.problem_mark or e.context_mark)}: invalid YAML: {problem}",
            hint="Check indentation and quoting at that position.",
        ) from e
    except yaml.YAMLError as e:
        raise error(f"{source}: invalid YAML: {e}", hint="Save the file as plain UTF-8 text.") from e
    except RecursionError as e:
        raise error(f"{source}: the {what} is nested too deeply", hint="Flatten it.") from e
    finally:
        loader.dispose()
    return data, node


def locate(
    node: yaml.Node | None, path: Sequence[str | int], *, at_key: bool = False
) -> tuple[int, int] | None:
    """1-based (line, column) of the deepest node along ``path`` that exists (its key if ``at_key``)."""
    best = (node.start_mark.line + 1, node.start_mark.column + 1) if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = next(
                ((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None
            )
            if match is None:
                break
            key, node = match
            # Point at the key for a missing or unknown value, at the value otherwise.
            best = (key.start_mark.line + 1, key.start_mark.column + 1)
            if not at_key and (not isinstance(node, yaml.ScalarNode) or node.value):
                best = (node.start_mark.line + 1, node.start_mark.column + 1)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            best = (node.start_mark.line + 1, node.start_mark.column + 1)
        else:
            break
    return best


def where(source: str, node: yaml.Node | None, path: Sequence[str | int], *, at_key: bool = False) -> str:
    found = locate(node, path, at_key=at_key)
    return _at(source, *found) if found else source


def read_text(
    path: str | os.PathLike[str],
    *,
    what: str,
    error: type[ConfigError] = ConfigError,
    missing_hint: str = "Check the path.",
) -> str:
    """Read a hand-written YAML file (at most 1 MiB, UTF-8) with errors that say which file and what to do."""
    file = Path(path)
    try:
        with file.open("rb") as stream:
            data = stream.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError as e:
        raise error(f"{file}: {what} file not found", hint=missing_hint) from e
    except OSError as e:
        raise error(
            f"{file}: cannot read the {what} file: {e.strerror or e}",
            hint="Make sure the path is a regular file the broker's user can read.",
        ) from e
    if len(data) > MAX_YAML_BYTES:
        raise error(
            f"{file}: {what} file is larger than 1 MiB", hint="It is written by hand; is this the right file?"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(
            f"{file}: {what} file is not valid UTF-8 (bad byte at offset {e.start})",
            hint="Save the file as UTF-8.",
        ) from e
