"""`install_broker` writes the broker's kubeconfig (it holds a token) 0600, even over a looser file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from lightkube import Client

from kubejit.clusters.bootstrap import install_broker
from kubejit.testing.controlplane import ControlPlane

pytestmark = pytest.mark.integration


def test_an_existing_world_readable_kubeconfig_ends_up_0600(
    admin_client: Client, control_plane: ControlPlane, tmp_path: Path
) -> None:
    out = tmp_path / "broker.kubeconfig"
    out.write_text("old: content\n")
    out.chmod(0o644)
    install_broker(admin_client, cluster=control_plane.name, out=out, token_seconds=600)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "token:" in out.read_text()
