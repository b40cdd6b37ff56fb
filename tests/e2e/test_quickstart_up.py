"""`kubejit up` as a process: `dev` in jwt mode (whoami names the person), `prod` in ServiceAccount mode."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from kubejit.testing.controlplane import ControlPlaneBinaries
from kubejit.testing.processes import free_port
from tests.broker_process import KUBECTL, KUBEJIT
from tests.polling import poll

pytestmark = pytest.mark.e2e


def test_up_runs_dev_in_jwt_mode_and_prod_in_service_account_mode(
    tmp_path: Path, control_plane_binaries: ControlPlaneBinaries
) -> None:
    home, port = tmp_path / "quickstart", free_port()
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [KUBEJIT, "up", "--dir", str(home), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    env = {
        **os.environ,
        "KUBEJIT_BROKER": f"https://127.0.0.1:{port}",
        "SSL_CERT_FILE": str(home / "tls/ca.crt"),
    }

    def healthy() -> bool:
        assert up.poll() is None, (tmp_path / "up.log").read_text()[-2000:]
        try:
            context = ssl.create_default_context(cafile=str(home / "tls" / "ca.crt"))
            return (
                httpx.get(f"https://127.0.0.1:{port}/healthz", verify=context, timeout=1).status_code == 200
            )
        except (httpx.TransportError, OSError):
            return False

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=120)

    try:
        assert poll(healthy, bool, within=120, every=0.5), (tmp_path / "up.log").read_text()[-2000:]
        config = (home / "config.yaml").read_text()
        assert "credentialMode: jwt" in config and config.count("credentialMode") == 1
        assert run(KUBEJIT, "login", "--dev-user", "alice").returncode == 0
        done = run(KUBEJIT, "request", "-c", "dev", "-n", "team-a", "-r", "edit", "--reason", "try", "--use")
        assert done.returncode == 0, done.stderr
        who = poll(
            lambda: run(KUBECTL, "auth", "whoami", "-o", "json"), lambda r: r.returncode == 0, within=60
        )
        assert who.returncode == 0, who.stderr
        user = json.loads(who.stdout)["status"]["userInfo"]
        assert user["username"] == "kubejit:alice"
        assert any(g.startswith("kubejit:grant:") for g in user["groups"])
        assert run(KUBECTL, "get", "configmaps").returncode == 0
        other = run(KUBECTL, "get", "configmaps", "-n", "team-b")
        assert "(Forbidden)" in other.stderr and 'User "kubejit:alice"' in other.stderr
    finally:
        os.killpg(up.pid, signal.SIGINT)  # Ctrl-C: the broker stops, then both clusters
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
        log.close()
    assert not (home / "clusters" / "dev" / "state.json").exists()
