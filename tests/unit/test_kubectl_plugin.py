"""`kubectl jit …` is the kubejit CLI under kubectl's plugin name; `ls` lists grants; shell completion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubejit.cli.kubectl_plugin import plugin_argv

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/usr/bin/kubectl-jit", "ls"], ["kubectl jit", "grants"]),
        (["kubectl-jit", "ls", "--all", "-o", "json"], ["kubectl jit", "grants", "--all", "-o", "json"]),
        (["kubectl-jit", "request", "-c", "dev"], ["kubectl jit", "request", "-c", "dev"]),
        (["kubectl-jit", "token", "--grant", "g1"], ["kubectl jit", "token", "--grant", "g1"]),
        (["kubectl-jit"], ["kubectl jit"]),
    ],
)
def test_plugin_arguments(argv: list[str], expected: list[str]) -> None:
    assert plugin_argv(argv) == expected


KUBEJIT = str(Path(sys.executable).with_name("kubejit"))


@pytest.mark.parametrize(
    ("words", "word", "expected"),
    [("kubejit kubec", "1", "kubeconfig"), ("kubejit kubeconfig --pr", "2", "--prune")],
)
def test_shell_completion_completes_commands_and_options(words: str, word: str, expected: str) -> None:
    env = {**os.environ, "_KUBEJIT_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": word}
    done = subprocess.run([KUBEJIT], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == expected, done.stderr


def test_the_completion_script_is_printed_for_installation() -> None:
    script = subprocess.run(
        [KUBEJIT, "--show-completion", "bash"], capture_output=True, text=True, check=False
    )
    assert script.returncode == 0 and "_kubejit_completion" in script.stdout


def test_kubectl_complete_jit_answers_one_word_a_line_then_no_file_completion() -> None:
    complete = str(Path(sys.executable).with_name("kubectl_complete-jit"))
    done = subprocess.run([complete, "l"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["login", "logout", "lock", "locks", "ls", ":4"]
