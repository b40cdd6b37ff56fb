"""The reconciler during a real cluster outage: one WARNING per outage, one INFO when it is back.

The dead cluster is the broker's own kubeconfig pointed at a closed loopback port (connection refused
from a real socket); the live one is the same cluster name served by the real control plane.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from kubejit.clock import SystemClock
from kubejit.clusters.adapter import KubeClusterAdapter
from kubejit.grants.service import GrantService
from kubejit.policy.model import Policy
from kubejit.testing.processes import free_port
from tests.broker_identity import BrokerIdentity
from tests.fakes import MemoryStore

pytestmark = pytest.mark.integration

TICKS = 4


def dead_adapter(identity: BrokerIdentity, tmp_path: Path) -> KubeClusterAdapter:
    config = yaml.safe_load(identity.kubeconfig_path.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    path = tmp_path / "dead.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return KubeClusterAdapter.from_kubeconfig(
        identity.plane.name,
        kubeconfig=str(path),
        grant_namespace=identity.grant_namespace,
        audience=identity.plane.audience,
    )


def test_an_outage_is_one_warning_and_its_end_one_info(
    broker_identity: BrokerIdentity, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name = broker_identity.plane.name
    store = MemoryStore()
    service = GrantService(
        store=store, audit=store, clusters={}, policy=Policy(roles={}, rules=()), clock=SystemClock()
    )
    caplog.set_level(logging.INFO, logger="kubejit")
    with dead_adapter(broker_identity, tmp_path) as dead, broker_identity.adapter() as live:
        service.clusters = {name: dead}
        for _ in range(TICKS):
            assert service.reconcile() == []  # no exception escapes a tick
        assert service.reachability.snapshot() == {name: False}
        service.clusters = {name: live}
        for _ in range(TICKS):
            service.reconcile()
        assert service.reachability.snapshot() == {name: True}

    about_it = [r for r in caplog.records if r.name == "kubejit.grants.reachability"]
    warnings = [r for r in about_it if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].exc_info is None
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == warnings
    assert f"cluster {name} is unreachable" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    infos = [r for r in about_it if r.levelno == logging.INFO]
    assert [r.getMessage() for r in infos] == [f"cluster {name} is reachable again"]
    assert all(r.exc_info is None for r in caplog.records)
