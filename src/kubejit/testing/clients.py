"""Admin API clients of a harness control plane (lightkube), kept apart so the CLI never imports lightkube."""

from __future__ import annotations

from lightkube import Client, KubeConfig

from kubejit.testing.controlplane import ControlPlane


def admin_client(plane: ControlPlane, *, field_manager: str = "kubejit-tests") -> Client:
    """A client authenticated as the cluster's admin (system:masters); the caller closes it."""
    # trust_env=False: a proxy from the environment must never capture loopback traffic.
    return Client(KubeConfig.from_file(plane.kubeconfig_path), field_manager=field_manager, trust_env=False)
