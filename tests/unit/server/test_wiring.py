"""build_services closes what it built when a later step fails, and on_shutdown closes it all in order."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from kubejit.clusters.adapter import KubeClusterAdapter
from kubejit.config import Settings
from kubejit.errors import ConfigError
from kubejit.server import wiring
from kubejit.store.checkpoints import Checkpointer

pytestmark = pytest.mark.unit

EXAMPLE_POLICY = Path(wiring.__file__).parent.parent / "examples" / "policy.yaml"

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: one
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: broker
  user: {token: not-a-real-token}
contexts:
- name: one
  context: {cluster: one, user: broker}
current-context: one
"""


def _settings(tmp_path: Path, *, second_kubeconfig: Path, dev_issuer: bool = True) -> Settings:
    good = tmp_path / "one.kubeconfig"
    good.write_text(KUBECONFIG)
    return Settings.model_validate(
        {
            "clusters": [
                {"name": "one", "kubeconfig": str(good), "audience": "a"},
                {"name": "two", "kubeconfig": str(second_kubeconfig), "audience": "a"},
            ],
            "policyFile": str(EXAMPLE_POLICY),
            "dataDir": str(tmp_path),
            "devIssuer": {"enabled": dev_issuer, "users": {"alice": ["developers"]}},
        }
    )


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What was closed, in order: each adapter by name, the engine, the final checkpoint."""
    seen: list[str] = []

    def spy(cls: type, method: str, label: Callable[[Any], str]) -> None:
        original = getattr(cls, method)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append(label(self))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, method, wrapper)

    spy(KubeClusterAdapter, "close", lambda adapter: f"cluster {adapter.name}")
    spy(Engine, "dispose", lambda _: "engine")
    spy(Checkpointer, "final", lambda _: "checkpoint")
    return seen


def test_a_missing_kubeconfig_half_way_closes_the_engine_and_the_clusters_built(
    tmp_path: Path, closed: list[str]
) -> None:
    """Before: the engine and cluster one's client and thread pool were left open."""
    settings = _settings(tmp_path, second_kubeconfig=tmp_path / "missing.kubeconfig")
    with pytest.raises(ConfigError, match=r"missing\.kubeconfig"):
        wiring.build_services(settings, workers=False)
    assert closed == ["cluster one", "engine"]


def test_no_identity_issuer_closes_every_cluster_and_the_engine(tmp_path: Path, closed: list[str]) -> None:
    second = tmp_path / "two.kubeconfig"
    second.write_text(KUBECONFIG)
    settings = _settings(tmp_path, second_kubeconfig=second, dev_issuer=False)
    with pytest.raises(ConfigError, match="no identity issuer"):
        wiring.build_services(settings, workers=False)
    assert closed == ["cluster two", "cluster one", "engine"]


def test_shutdown_signs_the_final_checkpoint_then_closes_clusters_and_the_engine_last(
    tmp_path: Path, closed: list[str]
) -> None:
    second = tmp_path / "two.kubeconfig"
    second.write_text(KUBECONFIG)
    services = wiring.build_services(_settings(tmp_path, second_kubeconfig=second), workers=False)
    assert closed == []
    for stop in services.on_shutdown:
        stop()
    assert closed == ["checkpoint", "cluster two", "cluster one", "engine"]


def test_a_second_broker_on_the_same_sqlite_database_is_refused_until_the_first_stops(
    tmp_path: Path,
) -> None:
    second = tmp_path / "two.kubeconfig"
    second.write_text(KUBECONFIG)
    settings = _settings(tmp_path, second_kubeconfig=second)
    first = wiring.build_services(settings, workers=False)
    try:
        with pytest.raises(ConfigError, match=rf"another broker \(pid {os.getpid()}\) is serving") as err:
            wiring.build_services(settings, workers=False)
        assert "PostgreSQL" in (err.value.hint or "")
    finally:
        for stop in first.on_shutdown:
            stop()
    again = wiring.build_services(settings, workers=False)  # the first one released it
    for stop in again.on_shutdown:
        stop()
