"""Choosing the cluster to scan: kubeconfig and context mistakes become one ConfigError each."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubejit.clusters.scan.fetch import kubeconfig_path, load_config
from kubejit.errors import ConfigError

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
    "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
    "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u"}}],
    "current-context": "dev",
}


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(KUBECONFIG))
    return path


def test_current_and_named_context(kubeconfig: Path) -> None:
    assert load_config(str(kubeconfig)).context_name == "dev"
    assert load_config(str(kubeconfig), "dev").cluster.server == "https://127.0.0.1:6443"


def test_kubeconfig_variable_and_default(monkeypatch: pytest.MonkeyPatch, kubeconfig: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{kubeconfig}:/elsewhere")
    assert kubeconfig_path(None) == kubeconfig
    monkeypatch.delenv("KUBECONFIG")
    assert kubeconfig_path(None) == Path.home() / ".kube" / "config"


def error(kubeconfig: str, context: str | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(kubeconfig, context)
    assert caught.value.hint
    return caught.value


def test_unknown_context(kubeconfig: Path) -> None:
    assert "context 'prod' is not in kubeconfig" in error(str(kubeconfig), "prod").message
    assert "(contexts: dev)" in error(str(kubeconfig), "prod").message


def test_no_current_context(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({k: v for k, v in KUBECONFIG.items() if k != "current-context"}))
    assert "no current context" in error(str(path)).message


def test_unreadable_kubeconfigs(tmp_path: Path) -> None:
    assert "not found" in error(str(tmp_path / "missing")).message
    assert "Is a directory" in error(str(tmp_path)).message
    (tmp_path / "broken").write_text("clusters: [\n")
    assert "not valid YAML" in error(str(tmp_path / "broken")).message
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00garbage")
    assert "not valid YAML" in error(str(tmp_path / "binary")).message
    (tmp_path / "list").write_text("- a\n- b\n")
    assert "is not a kubeconfig" in error(str(tmp_path / "list")).message
    (tmp_path / "partial").write_text("apiVersion: v1\n")
    assert "missing 'clusters'" in error(str(tmp_path / "partial")).message
