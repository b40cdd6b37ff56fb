"""`kubejit policy validate / check` load a policy the way the broker does: kubejit's namespaces protected."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kubejit.cli.app import app
from kubejit.errors import PolicyError

pytestmark = pytest.mark.unit

OPEN = """\
roles: {admin: {clusterRole: admin}}
rules:
  - {name: open, users: ['*'], clusters: ['*'], namespaces: ['*'], roles: [admin], approval: auto}
"""


def check(policy: Path, namespace: str, *extra: str) -> int:
    args = ["policy", "check", "-p", str(policy), "-u", "eve", "-c", "prod", "-n", namespace, "-r", "admin"]
    return CliRunner().invoke(app, [*args, *extra]).exit_code


@pytest.mark.parametrize("namespace", ["kubejit", "kubejit-grants", "kube-system"])
def test_check_denies_kubejits_and_system_namespaces_to_a_star(tmp_path: Path, namespace: str) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(OPEN)
    assert check(policy, "payments") == 0
    assert check(policy, namespace) == 3


def test_check_protects_the_broker_namespace_it_is_told(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(OPEN)
    assert check(policy, "jit", "--broker-namespace", "jit") == 3
    assert check(policy, "jit") == 0


def test_validate_refuses_a_rule_naming_the_broker_namespace(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(OPEN.replace("namespaces: ['*']", "namespaces: [kubejit]"))
    result = CliRunner().invoke(app, ["policy", "validate", "-p", str(policy)])
    assert isinstance(result.exception, PolicyError)  # main() prints it and exits 78
    assert "grants access to 'kubejit', kubejit's own namespace" in result.exception.message
