"""`kubejit dev-cluster` as a user runs it: a process per command, the real kubectl, isolated HOME/XDG.

Good input: start → status → kubectl works with the printed kubeconfig → stop leaves no process and no
file. Bad input: one `Error:` line (plus a hint) on stderr, the class's exit code, no traceback, and
nothing left running.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubejit.errors import DevClusterError, InvalidInput
from kubejit.testing.kubectl import run_kubectl
from kubejit.testing.processes import is_alive, pids_mentioning
from tests.polling import poll

pytestmark = pytest.mark.e2e

KUBEJIT = Path(sys.executable).parent / "kubejit"
NOT_RUNNING_EXIT = 3


def dev_cluster(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBEJIT), "dev-cluster", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def cluster_dir(name: str) -> Path:
    """Where the CLI keeps a cluster by default: under the (isolated) XDG_DATA_HOME."""
    return Path(os.environ["XDG_DATA_HOME"]) / "kubejit" / "dev-cluster" / name


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str, exit_code: int) -> None:
    assert "Traceback" not in result.stderr
    assert result.returncode == exit_code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("Error: "), result.stderr
    assert fragment in lines[0]
    assert all(line.startswith("Hint: ") for line in lines[1:]), result.stderr


def wait_gone(pids: list[int], *, seconds: float = 10.0) -> list[int]:
    """The pids still alive after up to ``seconds`` (init reaps orphans asynchronously)."""
    return poll(
        lambda: [pid for pid in pids if is_alive(pid)], lambda alive: not alive, within=seconds, every=0.1
    )


@pytest.fixture
def cluster_name() -> Iterator[str]:
    """A cluster name, stopped at the end whatever the test did (stop is idempotent)."""
    yield "e2e"
    dev_cluster("stop", "--name", "e2e")


def test_start_status_kubectl_stop(cluster_name: str) -> None:
    started = dev_cluster("start", "--name", cluster_name)
    assert started.returncode == 0, started.stderr
    match = re.search(r"^Kubeconfig: (.+)$", started.stdout, re.M)
    assert match, started.stdout
    kubeconfig = Path(match.group(1))
    assert kubeconfig.parent == cluster_dir(cluster_name)
    assert f"kubectl --kubeconfig {kubeconfig} get ns" in started.stdout

    status = dev_cluster("status", "--name", cluster_name)
    assert status.returncode == 0, status.stderr
    assert f"Dev cluster '{cluster_name}' is running." in status.stdout
    assert "https://e2e.kubejit.local" in status.stdout

    again = dev_cluster("start", "--name", cluster_name)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout

    printed = dev_cluster("kubeconfig", "--name", cluster_name)
    assert printed.stdout.strip() == str(kubeconfig)

    namespaces = run_kubectl(["--kubeconfig", str(kubeconfig), "get", "ns", "-o", "name"])
    assert namespaces.ok, namespaces.stderr
    assert "namespace/kube-system" in namespaces.stdout

    state = json.loads((cluster_dir(cluster_name) / "state.json").read_text())
    pids = [state["etcd_pid"], state["apiserver_pid"]]
    stopped = dev_cluster("stop", "--name", cluster_name)
    assert stopped.returncode == 0, stopped.stderr
    assert f"Dev cluster '{cluster_name}' stopped." in stopped.stdout
    assert wait_gone(pids) == []
    assert not cluster_dir(cluster_name).exists()

    after = dev_cluster("status", "--name", cluster_name)
    assert after.returncode == NOT_RUNNING_EXIT
    assert "is not running" in after.stdout


def test_a_crashed_cluster_reports_not_running_and_stop_cleans_up(tmp_path: Path, cluster_name: str) -> None:
    workdir = tmp_path / "cluster"
    assert dev_cluster("start", "--name", cluster_name, "--dir", str(workdir)).returncode == 0
    state = json.loads((workdir / "state.json").read_text())
    os.kill(state["apiserver_pid"], 9)
    assert wait_gone([state["apiserver_pid"]]) == []

    status = dev_cluster("status", "--name", cluster_name, "--dir", str(workdir))
    assert status.returncode == NOT_RUNNING_EXIT
    assert "its processes died" in status.stdout

    stopped = dev_cluster("stop", "--name", cluster_name, "--dir", str(workdir))
    assert stopped.returncode == 0, stopped.stderr
    assert "removed its leftover files" in stopped.stdout
    assert wait_gone([state["etcd_pid"]]) == []
    assert not workdir.exists()


# -- bad input -------------------------------------------------------------------------------------


def test_a_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    workdir = tmp_path / "cluster"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = dev_cluster("start", "--dir", str(workdir), "--port", str(port))
    assert_one_line_error(result, f"port {port} on 127.0.0.1 is already in use", DevClusterError.exit_code)
    assert "--port" in result.stderr  # the hint says what to do
    assert not workdir.exists()
    assert pids_mentioning(str(workdir)) == []


def test_missing_binaries_are_one_clear_error(tmp_path: Path) -> None:
    workdir = tmp_path / "cluster"
    env = dict(os.environ, KUBEJIT_BIN_CACHE=str(tmp_path / "empty-cache"), PATH=str(KUBEJIT.parent))
    result = dev_cluster("start", "--dir", str(workdir), env=env)
    assert_one_line_error(result, "etcd and kube-apiserver not found", DevClusterError.exit_code)
    assert "scripts/k8s-binaries" in result.stderr
    assert not workdir.exists()
    assert pids_mentioning(str(workdir)) == []


@pytest.mark.parametrize("inside", ["a-file", "/proc"], ids=["under-a-file", "under-proc"])
def test_an_unwritable_directory_is_one_clear_error(tmp_path: Path, inside: str) -> None:
    parent = Path(inside) if inside.startswith("/") else tmp_path / inside
    if not parent.exists():
        parent.write_text("")
    workdir = parent / f"kubejit-e2e-{os.getpid()}"
    result = dev_cluster("start", "--dir", str(workdir))
    assert_one_line_error(result, f"cannot create the cluster directory {workdir}", DevClusterError.exit_code)
    assert pids_mentioning(str(workdir)) == []


def test_a_non_empty_foreign_directory_is_refused(tmp_path: Path) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("mine")
    result = dev_cluster("start", "--dir", str(workdir))
    assert_one_line_error(result, "is not empty and was not created by kubejit", DevClusterError.exit_code)
    assert [entry.name for entry in workdir.iterdir()] == ["notes.txt"]


def test_an_invalid_name_is_one_clear_error() -> None:
    result = dev_cluster("start", "--name", "Not_A_DNS_Label")
    assert_one_line_error(result, "invalid cluster name 'Not_A_DNS_Label'", InvalidInput.exit_code)


def test_a_port_out_of_range_is_a_usage_error() -> None:
    result = dev_cluster("start", "--port", "70000")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Invalid value for '--port'" in result.stderr


def test_kubeconfig_of_a_stopped_cluster_is_one_clear_error() -> None:
    result = dev_cluster("kubeconfig", "--name", "absent")
    assert_one_line_error(result, "dev cluster 'absent' is not running", DevClusterError.exit_code)
    assert "kubejit dev-cluster start --name absent" in result.stderr


def test_a_corrupt_state_file_is_one_clear_error() -> None:
    directory = cluster_dir("garbled")
    directory.mkdir(parents=True)
    (directory / "state.json").write_text("{not json")
    result = dev_cluster("status", "--name", "garbled")
    assert_one_line_error(result, "cannot read the dev-cluster state file", DevClusterError.exit_code)


def test_stop_and_status_of_a_cluster_never_started() -> None:
    stopped = dev_cluster("stop", "--name", "never")
    assert stopped.returncode == 0, stopped.stderr
    assert "is not running" in stopped.stdout
    status = dev_cluster("status", "--name", "never")
    assert status.returncode == NOT_RUNNING_EXIT
