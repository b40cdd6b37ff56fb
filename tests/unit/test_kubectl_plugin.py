"""`kubectl jit …` is the kubejit CLI under kubectl's plugin name; `ls` lists grants."""

from __future__ import annotations

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
