"""YAML read with positions, so config and policy errors can say file:line:column.

PyYAML's composed node tree keeps marks; ``locate`` walks it along a pydantic error location.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from kubejit.errors import ConfigError

MAX_YAML_BYTES = 1024 * 1024


def parse_yaml(
    text: str, *, source: str, error: type[ConfigError] = ConfigError
) -> tuple[Any, yaml.Node | None]:
    """Safe-load YAML and also return its node tree; syntax errors carry the position."""
    if len(text.encode()) > MAX_YAML_BYTES:
        raise error(f"{source}: larger than 1 MiB", hint="Split it, or check that this is the right file.")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise error(
            f"{where}: invalid YAML: {exc.problem}", hint="Fix the YAML syntax at that position."
        ) from exc
    except yaml.YAMLError as exc:
        raise error(f"{source}: invalid YAML: {exc}") from exc
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
    position = locate(node, path, at_key=at_key)
    return f"{source}:{position[0]}:{position[1]}" if position else source


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
