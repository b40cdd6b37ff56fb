"""The broker re-reads its policy while running, as the Helm chart's ConfigMap mount updates it
(a ``..data`` symlink swap): a valid new policy decides the next request and is audited with its
hash; an invalid one is refused and audited with the error, and the previous policy keeps deciding."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubejit.audit.event import StoredEvent
from kubejit.store.audit_store import SqlAuditStore
from kubejit.store.engine import create_store_engine
from tests.broker_process import E2E_POLICY
from tests.lone_broker import LoneBroker
from tests.polling import poll


class ConfigMapVolume:
    """A directory laid out as the kubelet mounts a ConfigMap: ``policy.yaml -> ..data/policy.yaml``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.versions = 0
        directory.mkdir(parents=True, exist_ok=True)

    def publish(self, text: str) -> str:
        """Write a new version beside the old and swap ``..data`` to it atomically; its sha256."""
        self.versions += 1
        version = self.directory / f"..v{self.versions}"
        version.mkdir()
        (version / "policy.yaml").write_text(text)
        staged = self.directory / "..data_tmp"
        staged.symlink_to(version.name)
        os.replace(staged, self.directory / "..data")
        link = self.directory / "policy.yaml"
        if not link.is_symlink():
            link.symlink_to("..data/policy.yaml")
        return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def volume(tmp_path: Path) -> ConfigMapVolume:
    return ConfigMapVolume(tmp_path / "broker")


@pytest.fixture
def broker(volume: ConfigMapVolume) -> Iterator[LoneBroker]:
    volume.publish(E2E_POLICY)
    running = LoneBroker(volume.directory, extra_config={"workers": {"policyReloadIntervalSeconds": 0.2}})
    running.start()
    yield running
    running.stop()


def readyz(broker: LoneBroker) -> dict[str, Any]:
    with broker.client() as client:
        answer = client.get("/readyz")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


def may_request(broker: LoneBroker, token: str) -> list[str]:
    with broker.client() as client:
        answer = client.get("/v1/whoami", headers={"authorization": f"Bearer {token}"})
        answer.raise_for_status()
        return list(answer.json()["may_request"])


def audited(broker: LoneBroker, action: str) -> list[StoredEvent]:
    engine = create_store_engine(f"sqlite:///{broker.db_path}")
    try:
        return SqlAuditStore(engine).search_events(action=action, limit=10)
    finally:
        engine.dispose()


def test_a_valid_new_policy_is_applied_and_audited_with_its_hash(
    broker: LoneBroker, volume: ConfigMapVolume
) -> None:
    started = hashlib.sha256(E2E_POLICY.encode()).hexdigest()
    assert readyz(broker)["policy"]["sha256"] == started
    alice = broker.login("alice")
    assert any("e2e-auto" in rule for rule in may_request(broker, alice))

    new = volume.publish(E2E_POLICY.replace("name: e2e-auto", "name: e2e-reloaded"))
    assert poll(lambda: readyz(broker)["policy"]["sha256"], lambda h: h == new, within=30) == new
    rules = may_request(broker, alice)
    assert any("e2e-reloaded" in r for r in rules) and not any("e2e-auto" in r for r in rules), rules
    (event,) = audited(broker, "policy.reloaded")
    assert event.details["sha256"] == new and event.details["previous_sha256"] == started
    assert event.outcome == "success" and event.actor == "kubejit"
    # A restart on the reloaded file is no policy change: the audit log already has it.
    broker.stop()
    broker.start()
    assert len(audited(broker, "policy.changed")) == 1  # the first start's
    assert audited(broker, "broker.started")[0].details["policy_sha256"] == new


def test_an_invalid_policy_is_refused_audited_and_the_old_one_kept(
    broker: LoneBroker, volume: ConfigMapVolume
) -> None:
    started = readyz(broker)["policy"]["sha256"]
    alice = broker.login("alice")
    before = may_request(broker, alice)
    bad = volume.publish(E2E_POLICY.replace("roles: [view, edit]", "roles: [view, edti]"))

    refused = poll(lambda: audited(broker, "policy.reload_refused"), bool, within=30)
    assert refused, broker.log_text()
    (event,) = refused
    assert event.outcome == "failure" and event.details["sha256"] == bad
    assert "policy.yaml:12:19: unknown role" in event.details["error"], event.details
    status = readyz(broker)
    assert status["policy"]["sha256"] == started
    assert status["policy"]["refused"]["sha256"] == bad
    assert may_request(broker, alice) == before
    assert audited(broker, "policy.reloaded") == []
    assert "policy" in broker.log_text() and "refused" in broker.log_text()

    fixed = volume.publish(E2E_POLICY.replace("name: e2e-auto", "name: e2e-fixed"))
    assert poll(lambda: readyz(broker)["policy"], lambda p: p["sha256"] == fixed, within=30) == {
        "sha256": fixed,
        "source": str(volume.directory / "policy.yaml"),
    }


def test_the_loaded_policy_hash_is_the_one_broker_started_records(broker: LoneBroker) -> None:
    (started,) = audited(broker, "broker.started")
    assert readyz(broker)["policy"]["sha256"] == started.details["policy_sha256"]
    with pytest.raises(httpx.HTTPStatusError):  # /readyz needs no login, the API does
        may_request(broker, "not-a-token")
