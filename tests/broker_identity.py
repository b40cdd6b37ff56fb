"""The broker's own identity on the test control planes, set up exactly as an operator would.

``deploy/rbac.yaml`` is applied with the admin credentials, a token is minted for the
``kubejit-broker`` ServiceAccount, and a kubeconfig holding that token is written: adapters under test
act with the broker's least privilege, never as admin. The control planes themselves
(``control_plane``, ``second_control_plane``) and ``admin_client`` come from the top-level conftest.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lightkube import Client, KubeConfig

from kubejit.clusters.adapter import KubeClusterAdapter
from kubejit.clusters.bootstrap import install_broker, token_kubeconfig
from kubejit.testing.controlplane import ControlPlane

GRANT_NAMESPACE = "kubejit-grants"


@dataclass(frozen=True)
class BrokerIdentity:
    """Where the broker's least-privilege kubeconfig is, for one control plane."""

    plane: ControlPlane
    kubeconfig_path: Path
    grant_namespace: str = GRANT_NAMESPACE

    def adapter(self) -> KubeClusterAdapter:
        return KubeClusterAdapter.from_kubeconfig(
            self.plane.name,
            kubeconfig=str(self.kubeconfig_path),
            grant_namespace=self.grant_namespace,
            audience=self.plane.audience,
        )


def token_client(plane: ControlPlane, token: str, *, namespace: str = "default") -> Client:
    """A lightkube client that authenticates with nothing but ``token`` (a granted user's view)."""
    ca = base64.b64encode(Path(plane.ca_path).read_bytes()).decode()
    config = token_kubeconfig(
        cluster=plane.name,
        server=plane.server,
        ca_data=ca,
        token=token,
        user="token-user",
        namespace=namespace,
    )
    return Client(KubeConfig.from_dict(config), trust_env=False)


def set_up_broker(plane: ControlPlane, directory: Path) -> BrokerIdentity:
    """Namespaces, deploy/rbac.yaml, a broker token, and a kubeconfig holding it (mode 0600)."""
    with Client(KubeConfig.from_file(plane.kubeconfig_path), trust_env=False) as admin:
        installed = install_broker(
            admin, cluster=plane.name, out=directory / f"{plane.name}-broker.kubeconfig", token_seconds=3600
        )
    return BrokerIdentity(plane=plane, kubeconfig_path=installed.kubeconfig_path)


@pytest.fixture(scope="session")
def broker_identity(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> BrokerIdentity:
    return set_up_broker(control_plane, tmp_path_factory.mktemp("broker"))


@pytest.fixture(scope="session")
def second_broker_identity(
    second_control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> BrokerIdentity:
    return set_up_broker(second_control_plane, tmp_path_factory.mktemp("broker2"))


@pytest.fixture
def broker_adapter(broker_identity: BrokerIdentity) -> Iterator[KubeClusterAdapter]:
    adapter = broker_identity.adapter()
    yield adapter
    adapter.close()


@pytest.fixture
def second_broker_adapter(second_broker_identity: BrokerIdentity) -> Iterator[KubeClusterAdapter]:
    adapter = second_broker_identity.adapter()
    yield adapter
    adapter.close()


@pytest.fixture(scope="session")
def broker_kubeconfig(broker_identity: BrokerIdentity) -> Path:
    """The broker's least-privilege kubeconfig for ``control_plane`` (a token, never a certificate)."""
    return broker_identity.kubeconfig_path


@pytest.fixture(scope="session")
def grant_namespace(broker_identity: BrokerIdentity) -> str:
    return broker_identity.grant_namespace


@pytest.fixture(scope="session")
def token_client_for() -> Callable[[ControlPlane, str], Client]:
    """``token_client_for(plane, token)``: a client that holds nothing but ``token``."""
    return token_client
