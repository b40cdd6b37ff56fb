"""The admin kubeconfig of a control plane: client-certificate auth as ``system:masters``.

Certificates are embedded (``*-data``) so the file stays usable when copied elsewhere; it is written
0600 because it is cluster-admin. The context is named after the cluster, so several dev clusters can
be merged into one kubeconfig without clashing.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from kubejit.testing.certs import ClusterCertificates, write_private_file


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def admin_kubeconfig(*, name: str, server: str, certs: ClusterCertificates) -> dict[str, object]:
    user = f"{name}-admin"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(certs.ca_cert)}}
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(certs.admin_cert),
                    "client-key-data": _b64(certs.admin_key),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
        "preferences": {},
    }


def write_admin_kubeconfig(path: Path, *, name: str, server: str, certs: ClusterCertificates) -> Path:
    document = admin_kubeconfig(name=name, server=server, certs=certs)
    write_private_file(path, yaml.safe_dump(document, sort_keys=False).encode())
    return path
