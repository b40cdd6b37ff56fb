"""The broker protects its own namespaces: brokerNamespace, grantNamespace and, in a pod, the pod's."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubejit.config import parse_settings
from kubejit.server import wiring

pytestmark = pytest.mark.unit

CONFIG = """\
clusters:
  - {name: dev, kubeconfig: dev.yaml, audience: a}
policyFile: policy.yaml
"""


def test_defaults_protect_kubejit_and_kubejit_grants(tmp_path: Path) -> None:
    settings = parse_settings(CONFIG, source="c.yaml", base_dir=tmp_path)
    assert settings.broker_namespace == "kubejit"
    assert wiring._kubejit_namespaces(settings) == {"kubejit", "kubejit-grants"}


def test_moved_namespaces_are_the_protected_ones(tmp_path: Path) -> None:
    text = CONFIG + "brokerNamespace: jit\ngrantNamespace: jit-grants\n"
    settings = parse_settings(text, source="c.yaml", base_dir=tmp_path)
    assert wiring._kubejit_namespaces(settings) == {"jit", "jit-grants"}


def test_in_a_pod_the_pods_namespace_is_protected_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod_namespace = tmp_path / "namespace"
    pod_namespace.write_text("security-tools")
    monkeypatch.setattr(wiring, "_SA_NAMESPACE_FILE", pod_namespace)
    text = CONFIG.replace("kubeconfig: dev.yaml", "inCluster: true")
    settings = parse_settings(text, source="c.yaml", base_dir=tmp_path)
    assert wiring._kubejit_namespaces(settings) == {"kubejit", "kubejit-grants", "security-tools"}
