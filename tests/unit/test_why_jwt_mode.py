"""`kubejit why` in jwt mode: the Forbidden names the person, the kubectl context names the grant."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubejit.cli.commands.why import context_grant
from kubejit.denial import find_denials

pytestmark = pytest.mark.unit

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: jit-dev
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: jit-g1a2b3
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: kubejit
      args: [token, --grant, g1a2b3, --broker, "https://broker"]
- name: someone
  user: {token: x}
contexts:
- name: jit-dev-team-a
  context: {cluster: jit-dev, user: jit-g1a2b3}
- name: other
  context: {cluster: jit-dev, user: someone}
current-context: jit-dev-team-a
"""
FORBIDDEN = (
    'Error from server (Forbidden): configmaps is forbidden: User "kubejit:alice" cannot list resource '
    '"configmaps" in API group "" in the namespace "team-b"'
)


def test_the_grant_comes_from_the_current_or_the_named_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert context_grant(["get", "configmaps", "-n", "team-b"]) == "g1a2b3"
    assert context_grant(["--context", "other", "get", "pods"]) is None
    assert context_grant(["--context=jit-dev-team-a", "get", "pods"]) == "g1a2b3"
    (denial,) = find_denials(FORBIDDEN)
    assert denial.user == "kubejit:alice" and denial.grant_id is None
    assert denial.__class__(**{**denial.__dict__, "context_grant": "g1a2b3"}).grant_id == "g1a2b3"
