"""`kubejit migrate`: migrates an empty store, is a no-op at head, and --check says when it is behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kubejit.cli.app import _build
from kubejit.errors import InvalidInput
from kubejit.store import create_store_engine, current_revision, head_revision

pytestmark = pytest.mark.unit


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_build(), ["migrate", *args])
    return result.exit_code, result.output


def test_migrate_check_then_migrate_then_nothing_left(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kubejit.db'}"
    head = head_revision()
    assert _run("--store-url", url, "--check") == (
        1,
        f"store at revision none; this release expects {head}\n",
    )
    assert _run("--store-url", url) == (0, f"store migrated from none to revision {head}\n")
    assert _run("--store-url", url) == (0, f"store already at revision {head}\n")
    assert _run("--store-url", url, "--check")[0] == 0
    engine = create_store_engine(url)
    assert current_revision(engine) == head
    engine.dispose()


def test_migrate_without_a_store_says_how_to_name_one() -> None:
    result = CliRunner().invoke(_build(), ["migrate"])
    assert isinstance(result.exception, InvalidInput)  # `kubejit` prints it as message + hint
    assert "--store-url" in (result.exception.hint or "")
