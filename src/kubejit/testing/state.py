"""Where a control plane lives on disk, and the ``state.json`` that lets another process find it.

`kubejit dev-cluster start` exits while etcd and kube-apiserver keep running, so `stop` and `status`
(later, in another process) learn the pids, ports and paths from this file. The file is written once
the cluster is ready and removed when it is stopped; a file whose processes are gone is *stale*.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from kubejit.errors import DevClusterError, InvalidInput

STATE_FILE = "state.json"
#: A DNS label: the name goes into the ServiceAccount issuer URL https://<name>.kubejit.local.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def validate_cluster_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInput(
            f"invalid cluster name {name!r}",
            hint="Use a DNS label: lowercase letters, digits and '-', at most 63 characters (e.g. 'dev').",
        )
    return name


def data_home() -> Path:
    """$XDG_DATA_HOME, or ~/.local/share as the XDG base directory spec defaults it."""
    base = os.environ.get("XDG_DATA_HOME")
    return Path(base) if base else Path.home() / ".local" / "share"


def default_cluster_dir(name: str) -> Path:
    return data_home() / "kubejit" / "dev-cluster" / validate_cluster_name(name)


@dataclass(frozen=True)
class ClusterState:
    """Everything another process needs to use, inspect or stop a running control plane."""

    name: str
    workdir: str
    server: str
    port: int
    etcd_client_port: int
    etcd_peer_port: int
    etcd_pid: int
    apiserver_pid: int
    kubeconfig_path: str
    ca_path: str
    audit_log_path: str
    issuer: str
    audience: str
    created_workdir: bool
    started_at: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def state_path(workdir: Path) -> Path:
    return workdir / STATE_FILE


def write_state(state: ClusterState) -> None:
    path = state_path(Path(state.workdir))
    partial = path.with_name(path.name + ".partial")
    partial.write_text(state.to_json())
    partial.replace(path)  # readers never see half a file


def read_state(workdir: Path) -> ClusterState | None:
    """The recorded state, or None when no cluster was started in ``workdir``."""
    path = state_path(workdir)
    try:
        raw = json.loads(path.read_text())
        return ClusterState(**raw)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError, TypeError) as e:
        raise DevClusterError(
            f"cannot read the dev-cluster state file {path}: {e}",
            hint=f"If no etcd or kube-apiserver of this cluster is running, delete {workdir}.",
        ) from e
