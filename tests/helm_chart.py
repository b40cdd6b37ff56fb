"""helm from the binary cache and the repository's charts rendered to objects, for the chart tests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubejit.testing import binaries

ROOT = Path(__file__).resolve().parents[1]
BROKER_CHART = ROOT / "deploy" / "helm" / "kubejit"
TARGET_CHART = ROOT / "deploy" / "helm" / "kubejit-target"


@pytest.fixture(scope="session")
def helm() -> Path:
    """helm from the binary cache; its absence fails (never skips) with the command that builds it."""
    found = binaries.find(binaries.HELM)
    if found is None:
        pytest.fail(
            f"helm {binaries.HELM_VERSION} is not in {binaries.HELM.cache_path.parent} or on PATH: "
            "run `scripts/k8s-binaries helm` once to build it",
            pytrace=False,
        )
    return found


def template(
    helm: Path, chart: Path, *, namespace: str, values: tuple[str, ...] | list[str] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), "template", chart.name, str(chart), "--namespace", namespace, *values],
        capture_output=True,
        text=True,
        check=False,
    )


def render(
    helm: Path, chart: Path, *, namespace: str, values: tuple[str, ...] | list[str] = ()
) -> list[dict[str, Any]]:
    """The chart's objects for these values; a failed render fails the test with helm's message."""
    rendered = template(helm, chart, namespace=namespace, values=values)
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
