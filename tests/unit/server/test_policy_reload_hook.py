"""A reloaded policy is handed on once it decides (the broker checks its notification routes against
it); a refused file is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubejit.clock import FixedClock
from kubejit.grants.service import GrantService
from kubejit.policy.load import parse_policy
from kubejit.policy.model import Policy
from kubejit.server.policy_reload import PolicyReload
from tests.fakes import FakeCluster, MemoryStore

pytestmark = pytest.mark.unit

BEFORE = """
roles: {view: {clusterRole: view}}
rules:
  - {name: dev-view, groups: [developers], clusters: [dev], namespaces: [team-a], roles: [view], approval: auto}
"""
AFTER = BEFORE.replace("dev-view", "dev-read")


def test_each_applied_policy_is_handed_on_and_a_refused_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(BEFORE)
    store, clock = MemoryStore(), FixedClock()
    service = GrantService(
        store=store, audit=store, clusters={"dev": FakeCluster()}, policy=parse_policy(BEFORE), clock=clock
    )
    applied: list[Policy] = []
    reload = PolicyReload(
        path,
        service=service,
        audit=store,
        clock=clock,
        protected_namespaces=frozenset(),
        on_applied=applied.append,
    )
    path.write_text(AFTER)
    assert reload.tick() is True
    assert [r.name for p in applied for r in p.rules] == ["dev-read"] and applied[0] is service.policy
    path.write_text("rules: [")  # not YAML: refused, the previous policy stays
    assert reload.tick() is False
    assert len(applied) == 1
