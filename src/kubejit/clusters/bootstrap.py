"""Prepare a cluster for the broker, as an operator would: namespaces, least-privilege RBAC, a token.

Used by the quick start (`kubejit up`) and the test fixtures. It runs once with admin credentials;
the broker itself then only ever acts as its ``kubejit-broker`` ServiceAccount.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from lightkube import ApiError, Client, KubeConfig, codecs
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.core_v1 import Namespace, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import RoleBinding

from kubejit.clusters.broker_manifest import (
    DEFAULT_BROKER_NAMESPACE,
    DEFAULT_GRANT_NAMESPACE,
    broker_manifest,
    jwt_mode_manifest,
)
from kubejit.clusters.errors import translated
from kubejit.config import CredentialMode
from kubejit.errors import ClusterError

BROKER_NAMESPACE = DEFAULT_BROKER_NAMESPACE
GRANT_NAMESPACE = DEFAULT_GRANT_NAMESPACE
BROKER_ACCOUNT = "kubejit-broker"
FIELD_MANAGER = "kubejit-bootstrap"
_PROBE_LABELS = {"app.kubernetes.io/managed-by": "kubejit", "kubejit.io/grant": "g0probe"}


def rbac_manifest() -> str:
    """deploy/rbac.yaml, shipped inside the package so an installed kubejit can apply it."""
    return (resources.files("kubejit") / "manifests" / "rbac.yaml").read_text()


@dataclass(frozen=True)
class BrokerCredentials:
    kubeconfig_path: Path
    server: str


def rbac_documents(
    *,
    broker_namespace: str = BROKER_NAMESPACE,
    grant_namespace: str = GRANT_NAMESPACE,
    mode: CredentialMode = "serviceAccount",
) -> list[dict[str, Any]]:
    """The shipped manifest's documents, for these namespaces (``broker_manifest`` says what changes);
    for a jwt-mode cluster without the ServiceAccount and TokenRequest rights."""
    documents = [doc for doc in yaml.safe_load_all(rbac_manifest()) if isinstance(doc, dict)]
    built = broker_manifest(documents, broker_namespace=broker_namespace, grant_namespace=grant_namespace)
    return jwt_mode_manifest(built, grant_namespace=grant_namespace) if mode == "jwt" else built


def install_broker(
    admin: Client,
    *,
    cluster: str,
    out: Path,
    grant_namespace: str = GRANT_NAMESPACE,
    broker_namespace: str = BROKER_NAMESPACE,
    namespaces: Iterable[str] = (),
    token_seconds: int = 24 * 3600,
    mode: CredentialMode = "serviceAccount",
) -> BrokerCredentials:
    """Apply the broker's RBAC for these namespaces and write a kubeconfig (0600) that acts as its
    ServiceAccount (config ``brokerNamespace`` / ``grantNamespace`` must say the same)."""
    documents = rbac_documents(broker_namespace=broker_namespace, grant_namespace=grant_namespace, mode=mode)
    with translated(cluster=cluster, action="install the kubejit broker"):
        for name in (broker_namespace, grant_namespace, *namespaces):
            _ensure_namespace(admin, name)
        for document in documents:
            admin.apply(codecs.from_dict(document), field_manager=FIELD_MANAGER, force=True)
        request = ServiceAccount.Token(
            metadata=ObjectMeta(name=BROKER_ACCOUNT),
            spec=TokenRequestSpec(audiences=[], expirationSeconds=token_seconds),
        )
        answer = admin.create(request, BROKER_ACCOUNT, namespace=broker_namespace)
    if answer.status is None or not answer.status.token:
        raise ClusterError(f"cluster '{cluster}' returned no token for {BROKER_ACCOUNT}")
    server, ca_data = _endpoint(admin)
    document = token_kubeconfig(
        cluster=cluster,
        server=server,
        ca_data=ca_data,
        token=answer.status.token,
        user=BROKER_ACCOUNT,
        namespace=broker_namespace,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # the file holds the broker's token; an existing one keeps its mode otherwise
    with os.fdopen(fd, "w") as handle:
        handle.write(yaml.safe_dump(document, sort_keys=False))
    with Client(KubeConfig.from_file(out), trust_env=False) as broker:
        wait_for_admission_policy(broker, cluster=cluster)
    return BrokerCredentials(kubeconfig_path=out, server=server)


def _ensure_namespace(admin: Client, name: str) -> None:
    try:
        admin.create(Namespace(metadata=ObjectMeta(name=name)))
    except ApiError as e:
        if e.status.code != 409:
            raise


def _endpoint(client: Client) -> tuple[str, str | None]:
    cluster = client.config.cluster
    if cluster.certificate_auth_data:
        return cluster.server, cluster.certificate_auth_data
    if cluster.certificate_auth:
        pem = Path(client.config.abs_file(cluster.certificate_auth)).read_bytes()
        return cluster.server, base64.b64encode(pem).decode()
    return cluster.server, None


def token_kubeconfig(
    *,
    cluster: str,
    server: str,
    ca_data: str | None,
    token: str,
    user: str,
    namespace: str = BROKER_NAMESPACE,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"server": server}
    if ca_data:
        entry["certificate-authority-data"] = ca_data
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": entry}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": cluster, "context": {"cluster": cluster, "user": user, "namespace": namespace}}
        ],
        "current-context": cluster,
    }


def wait_for_admission_policy(broker: Client, *, cluster: str, seconds: float = 30.0) -> None:
    """A new ValidatingAdmissionPolicy loads asynchronously: probe with a dry-run binding it must
    refuse, so the broker never runs before its guard rails are in force. The grant limits need no
    probe of their own: they are applied first, and the API server's admission plugin sees policies
    and bindings in the order they were written."""
    stray = RoleBinding(
        metadata=ObjectMeta(name="kubejit-g0probe", namespace="default", labels=_PROBE_LABELS),
        roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
        subjects=[Subject(kind="User", name="mallory", apiGroup="rbac.authorization.k8s.io")],
    )
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            broker.create(stray, dry_run=True)
        except ApiError as e:
            if "ValidatingAdmissionPolicy" in (e.status.message or ""):
                return
            raise ClusterError(
                f"cluster '{cluster}': unexpected answer to the policy probe: {e.status.message}"
            ) from e
        time.sleep(0.2)
    raise ClusterError(
        f"cluster '{cluster}': the kubejit-broker-bindings admission policy never took effect",
        hint="ValidatingAdmissionPolicy needs Kubernetes 1.30 or newer.",
    )
