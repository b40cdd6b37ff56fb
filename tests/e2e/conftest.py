"""e2e fixtures: a broker process on both test clusters, and namespaces of the test's own."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import RoleBinding

from kubejit.testing.controlplane import ControlPlane
from tests.broker_identity import BrokerIdentity
from tests.broker_process import Broker


@pytest.fixture
def broker(
    tmp_path: Path, broker_identity: BrokerIdentity, second_broker_identity: BrokerIdentity
) -> Iterator[Broker]:
    running = Broker(tmp_path / "broker", [broker_identity, second_broker_identity])
    running.workdir.mkdir()
    running.start()
    yield running
    running.stop()


@pytest.fixture
def namespaces(
    admin_client_for: Callable[[ControlPlane], Client],
) -> Callable[[ControlPlane, int], list[str]]:
    """``namespaces(plane, n)``: n fresh namespaces named e2e-<random> (the e2e policy's glob)."""

    def make(plane: ControlPlane, count: int = 1) -> list[str]:
        admin = admin_client_for(plane)
        names = [f"e2e-{secrets.token_hex(4)}" for _ in range(count)]
        for name in names:
            admin.create(Namespace(metadata=ObjectMeta(name=name)))
        return names

    return make


def owned_objects(admin: Client, grant_id: str | None = None) -> list[str]:
    """Every kubejit-labelled ServiceAccount and RoleBinding in the cluster (optionally of one grant)."""
    labels = {"app.kubernetes.io/managed-by": "kubejit"}
    if grant_id:
        labels["kubejit.io/grant"] = grant_id
    found = [
        f"ServiceAccount/{sa.metadata.name}"
        for sa in admin.list(ServiceAccount, namespace="*", labels=dict(labels))
        if sa.metadata
    ]
    found += [
        f"RoleBinding/{rb.metadata.namespace}/{rb.metadata.name}"
        for rb in admin.list(RoleBinding, namespace="*", labels=dict(labels))
        if rb.metadata
    ]
    return sorted(found)
