"""`kubejit serve` refuses to start on invalid config or policy, saying file, line and what is wrong."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.broker_process import E2E_POLICY, KUBEJIT


def serve(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBEJIT, "serve", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def write(tmp_path: Path, *, policy: str = E2E_POLICY, **overrides: object) -> Path:
    (tmp_path / "policy.yaml").write_text(policy)
    (tmp_path / "broker.kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    config: dict[str, object] = {
        "broker": {"host": "127.0.0.1", "port": 1},
        "clusters": [{"name": "dev", "kubeconfig": "broker.kubeconfig", "audience": "https://dev"}],
        "policyFile": "policy.yaml",
        "devIssuer": {"enabled": True, "users": {"alice": ["developers"]}},
        **overrides,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (E2E_POLICY.replace("roles: [view, edit]", "roles: [view, edti]"), "policy.yaml:12:19: unknown role"),
        (E2E_POLICY.replace("max: 4h", "max: 4 hours"), "policy.yaml:13:34: rule"),
        (E2E_POLICY + "  - nme: x\n", "policy.yaml:23:"),
    ],
)
def test_invalid_policy_stops_the_broker_with_its_position(
    tmp_path: Path, policy: str, expected: str
) -> None:
    done = serve(write(tmp_path, policy=policy))
    assert done.returncode == 78, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_invalid_config_stops_the_broker_with_its_position(tmp_path: Path) -> None:
    config = write(tmp_path)
    config.write_text(config.read_text().replace("port: 1", "port: 70000"))
    done = serve(config)
    assert done.returncode == 78 and "config.yaml:3:" in done.stderr and "broker.port" in done.stderr, (
        done.stderr
    )
    assert "Traceback" not in done.stderr


def test_unsafe_dev_issuer_and_missing_files_are_refused(tmp_path: Path) -> None:
    done = serve(write(tmp_path, broker={"host": "0.0.0.0", "port": 1}))
    assert done.returncode == 78 and "loopback" in done.stderr
    behind_proxy = {"host": "127.0.0.1", "port": 1, "publicUrl": "https://kubejit.example.com"}
    done = serve(write(tmp_path, broker=behind_proxy))
    assert done.returncode == 78 and "devIssuer.enabled: false" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    done = serve(write(tmp_path), "--host", "0.0.0.0")  # an override is checked like the file
    assert done.returncode == 78 and "--host/--port: the dev issuer" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    done = serve(write(tmp_path, policyFile="nope.yaml"))
    assert done.returncode == 78 and "nope.yaml" in done.stderr and "Traceback" not in done.stderr
    done = serve(tmp_path / "missing.yaml")
    assert done.returncode == 78 and "config file not found" in done.stderr
