"""The krew manifest names the archive deploy/krew/archive.py builds, and its shim runs the plugin."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

KREW = Path(__file__).parents[2] / "deploy" / "krew"


def test_manifest_matches_the_reproducible_archive() -> None:
    spec = importlib.util.spec_from_file_location("krew_archive", KREW / "archive.py")
    assert spec is not None and spec.loader is not None
    archive = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(archive)
    manifest = yaml.safe_load((KREW / "jit.yaml").read_text())
    assert manifest["kind"] == "Plugin" and manifest["metadata"]["name"] == "jit"
    (platform,) = manifest["spec"]["platforms"]
    assert platform["bin"] == "kubectl-jit"
    assert platform["uri"].endswith(f"/{manifest['spec']['version']}/kubectl-jit.tar.gz")
    assert platform["sha256"] == hashlib.sha256(archive.archive_bytes()).hexdigest()


def test_the_shim_runs_kubectl_jit() -> None:
    env = {**os.environ, "KUBEJIT_PYTHON": sys.executable}
    done = subprocess.run(
        [str(KREW / "kubectl-jit"), "ls", "--help"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: kubectl jit grants" in done.stdout
