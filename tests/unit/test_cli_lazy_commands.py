"""A command loads its own module only: `kubejit whoami` must not pay for audit, scan or httpx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kubejit.cli import app as kubejit_app

pytestmark = pytest.mark.unit

RUN_WHOAMI = """
import json, sys
from kubejit.cli.app import main
sys.argv = ["kubejit", "whoami"]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def test_whoami_imports_only_its_own_command_module(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", RUN_WHOAMI], env=env, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "not logged in" in done.stderr  # it ran the command
    commands = {name for name in loaded if name.startswith("kubejit.cli.commands.")}
    assert commands == {"kubejit.cli.commands.auth"}
    assert not {"httpx", "lightkube", "sqlalchemy", "fastapi"} & {name.split(".")[0] for name in loaded}


def test_help_lists_every_command_in_order() -> None:
    shown = CliRunner().invoke(kubejit_app.app, ["--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    listing = shown.output.partition("\nCommands:\n")[2]
    listed = [line.split()[0] for line in listing.splitlines() if line.startswith("  ") and line[2] != " "]
    names = [name for name in listed if name in kubejit_app.COMMANDS]
    assert names == list(kubejit_app.COMMANDS)


def test_a_typo_is_still_answered_with_the_commands_it_resembles() -> None:
    answer = CliRunner().invoke(kubejit_app.app, ["whoam"])
    assert answer.exit_code == 2 and "Did you mean 'whoami'" in answer.output
