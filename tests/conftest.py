"""Fixtures shared by every tier: real control planes, per-test isolation, admin clients.

The control planes are the same ``kubejit.testing.controlplane.ControlPlane`` that `kubejit dev-cluster`
runs (attached, not detached), one per session, each in its own temporary directory. Every test gets
its own HOME, KUBECONFIG and XDG_* folders so nothing reads or writes the developer's real ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lightkube import Client

import kubejit.testing.clients
from kubejit.testing import binaries
from kubejit.testing.controlplane import ControlPlane, ControlPlaneBinaries, ensure_binaries

# Resolve the binary cache from the developer's real HOME/XDG_CACHE_HOME *before* any test isolates
# them, so control planes (and the CLI run as a subprocess) keep finding the built binaries.
os.environ.setdefault("KUBEJIT_BIN_CACHE", str(binaries.cache_root()))
# scripts/image keeps its base tarball and buildah storage beside it (tests/e2e/test_image.py).
os.environ.setdefault("KUBEJIT_IMAGE_CACHE", str(binaries.cache_root().parent / "image"))

_TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier from its folder, so `-m unit` never depends on a forgotten marker."""
    here = Path(__file__).parent
    for item in items:
        if not item.path.is_relative_to(here):
            continue
        tier = item.path.relative_to(here).parts[0]
        if tier in _TIERS and item.get_closest_marker(tier) is None:
            item.add_marker(getattr(pytest.mark, tier))


_XDG_DIRS = {
    "XDG_CONFIG_HOME": ".config",
    "XDG_DATA_HOME": ".local/share",
    "XDG_STATE_HOME": ".local/state",
    "XDG_CACHE_HOME": ".cache",
    "XDG_RUNTIME_DIR": "run",
}


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME with XDG_* and KUBECONFIG inside it, for this test and the processes it starts."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for variable, relative in _XDG_DIRS.items():
        monkeypatch.setenv(variable, str(home / relative))
    (home / "run").mkdir(mode=0o700)
    monkeypatch.setenv("KUBECONFIG", str(home / ".kube" / "config"))
    return home


@pytest.fixture(scope="session")
def control_plane_binaries(pytestconfig: pytest.Config) -> ControlPlaneBinaries:
    """etcd and kube-apiserver, built into the cache on first use (minutes, progress on the terminal)."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")

    def progress(message: str) -> None:
        if capture is None:  # run with -p no:capture
            print(f"[kubejit] {message}", flush=True)
            return
        with capture.global_and_fixture_disabled():
            print(f"\n[kubejit] {message}", flush=True)

    return ensure_binaries(log=progress)


def _run_control_plane(
    name: str, tmp_path_factory: pytest.TempPathFactory, found: ControlPlaneBinaries
) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path_factory.mktemp(f"control-plane-{name}"), name=name, binaries=found)
    with plane:
        yield plane


@pytest.fixture(scope="session")
def control_plane(
    tmp_path_factory: pytest.TempPathFactory, control_plane_binaries: ControlPlaneBinaries
) -> Iterator[ControlPlane]:
    """A running etcd + kube-apiserver (RBAC, ServiceAccount tokens, audit log) for the whole session."""
    yield from _run_control_plane("kubejit-test-a", tmp_path_factory, control_plane_binaries)


@pytest.fixture(scope="session")
def second_control_plane(
    tmp_path_factory: pytest.TempPathFactory, control_plane_binaries: ControlPlaneBinaries
) -> Iterator[ControlPlane]:
    """An independent cluster (other CA, signing key and issuer): tokens of one are rejected by the other."""
    yield from _run_control_plane("kubejit-test-b", tmp_path_factory, control_plane_binaries)


@pytest.fixture
def admin_client(control_plane: ControlPlane) -> Iterator[Client]:
    """Admin lightkube client of ``control_plane``."""
    client = kubejit.testing.clients.admin_client(control_plane)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def admin_client_for() -> Iterator[Callable[[ControlPlane], Client]]:
    """Factory of admin clients for any control plane; all are closed when the test ends."""
    clients: list[Client] = []

    def make(plane: ControlPlane) -> Client:
        client = kubejit.testing.clients.admin_client(plane)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# The broker's least-privilege identity on each control plane (integration and e2e tiers).
from tests.broker_identity import (  # noqa: E402
    broker_adapter,
    broker_identity,
    broker_kubeconfig,
    grant_namespace,
    second_broker_adapter,
    second_broker_identity,
    token_client_for,
)

__all__ = [
    "broker_adapter",
    "broker_identity",
    "broker_kubeconfig",
    "grant_namespace",
    "second_broker_adapter",
    "second_broker_identity",
    "token_client_for",
]
