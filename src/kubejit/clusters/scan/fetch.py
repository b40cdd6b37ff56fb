"""The scanner's only I/O: read a cluster's RBAC objects, ServiceAccounts and token-Secret metadata.

Six lists run in parallel (one API call per 500 objects each), with whatever identity the kubeconfig
context holds; reading needs only `list` on those kinds. Legacy token Secrets are listed
metadata-only: the request asks the API server for ``PartialObjectMetadataList`` (filtered to
``type=kubernetes.io/service-account-token``), so Secret data never crosses the wire, and of that
metadata only name, namespace, age and owner are kept (an annotation such as
``kubectl.kubernetes.io/last-applied-configuration`` could hold the token).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import yaml
from lightkube import ALL_NS, ApiError, Client, KubeConfig
from lightkube import ConfigError as LightkubeConfigError
from lightkube.config.client_adapter import Client as HttpClient
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.kubeconfig import SingleConfig
from lightkube.resources.core_v1 import ServiceAccount
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding, Role, RoleBinding

from kubejit.clusters.errors import MAX_MESSAGE_CHARS, cluster_error, status_code
from kubejit.clusters.objects import truncate
from kubejit.clusters.scan.model import Json, Snapshot, snapshot_from_objects
from kubejit.errors import ClusterError, ClusterForbidden, ClusterUnavailable, ConfigError

CHUNK_SIZE = 500
DEFAULT_KUBECONFIG = "~/.kube/config"
TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"
_METADATA_ONLY = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
_KEPT_ANNOTATIONS = ("kubernetes.io/service-account.name",)

Progress = Callable[[str], None]


def kubeconfig_path(kubeconfig: str | None) -> Path:
    """The file to read: ``--kubeconfig``, else the first of $KUBECONFIG, else ~/.kube/config."""
    chosen = kubeconfig or next((p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p), None)
    return Path(chosen or DEFAULT_KUBECONFIG).expanduser()


def load_config(kubeconfig: str | None = None, context: str | None = None) -> SingleConfig:
    """The connection settings of ``context`` (default: the current one), or a ``ConfigError``."""
    path = kubeconfig_path(kubeconfig)
    whole = _read_kubeconfig(path)
    try:
        config = whole.get(context)
    except (LightkubeConfigError, KeyError) as e:
        known = ", ".join(sorted(whole.contexts)) or "none"
        what = f"context '{context}' is not in" if context else "no current context is set in"
        raise ConfigError(
            f"{what} kubeconfig '{path}' (contexts: {known})",
            hint="Pass one of its contexts with --context, or another file with --kubeconfig.",
        ) from e
    if config is None:  # KubeConfig.get() without a default never answers None; keep mypy honest
        raise ConfigError(f"kubeconfig '{path}' selects no context", hint=_KUBECONFIG_HINT)
    return config


def _read_kubeconfig(path: Path) -> KubeConfig:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"kubeconfig '{path}' not found", hint=_KUBECONFIG_HINT) from e
    except OSError as e:
        raise ConfigError(f"cannot read kubeconfig '{path}': {e.strerror or e}", hint=_KUBECONFIG_HINT) from e
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        where = getattr(e, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"kubeconfig '{path}' is not valid YAML{line}", hint=_KUBECONFIG_HINT) from e
    if not isinstance(document, dict):
        raise ConfigError(
            f"kubeconfig '{path}' is not a kubeconfig (no clusters, no contexts)", hint=_KUBECONFIG_HINT
        )
    try:
        return KubeConfig.from_dict(document, fname=path)
    except (LightkubeConfigError, KeyError, TypeError, ValueError, AttributeError) as e:
        missing = f": missing {e}" if isinstance(e, KeyError) else ""
        raise ConfigError(
            f"kubeconfig '{path}' is not a valid kubeconfig{missing}", hint=_KUBECONFIG_HINT
        ) from e


_KUBECONFIG_HINT = "Pass a readable kubeconfig with --kubeconfig (or set KUBECONFIG)."


def fetch_snapshot(config: SingleConfig, *, progress: Progress | None = None) -> Snapshot:
    """Everything a scan needs from the cluster of ``config``, read in parallel."""
    say = progress or (lambda _message: None)
    cluster = config.context_name
    client = Client(config=config, trust_env=True)
    http = HttpClient(config, ConnectionParams(trust_env=True))
    jobs: dict[str, Callable[[], list[Json]]] = {
        "cluster_roles": lambda: _list(client, ClusterRole),
        "roles": lambda: _list(client, Role, namespace=ALL_NS),
        "cluster_role_bindings": lambda: _list(client, ClusterRoleBinding),
        "role_bindings": lambda: _list(client, RoleBinding, namespace=ALL_NS),
        "service_accounts": lambda: _list(client, ServiceAccount, namespace=ALL_NS),
        "token_secrets": lambda: list(_token_secret_metadata(http)),
    }
    try:
        with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="kubejit-scan") as pool:
            futures = {name: pool.submit(_reporting(name, job, say, cluster)) for name, job in jobs.items()}
            lists = {name: future.result() for name, future in futures.items()}
    finally:
        client.close()
        http.close()
    return snapshot_from_objects(cluster, **lists)


def _reporting(
    name: str, job: Callable[[], list[Json]], say: Progress, cluster: str
) -> Callable[[], list[Json]]:
    what = name.replace("_", " ")

    def run() -> list[Json]:
        try:
            items = job()
        except (ApiError, httpx2.HTTPError) as e:
            raise scan_error(e, context=cluster, what=what) from e
        say(f"{len(items)} {what}")
        return items

    return run


_READ_HINT = (
    "A scan lists ClusterRoles, Roles, their bindings, ServiceAccounts and (metadata only) Secrets in "
    "every namespace: use a --context allowed to `list` them cluster-wide (docs/scan.md has a "
    "read-only ClusterRole for it)."
)


def scan_error(error: httpx2.HTTPError, *, context: str, what: str) -> ClusterError:
    """An API failure while reading, worded for the person scanning with their own credentials."""
    code = status_code(error)
    if code == 403:
        return ClusterForbidden(f"context '{context}' may not list {what}: {_said(error)}", hint=_READ_HINT)
    if code == 401:
        return ClusterError(
            f"the cluster of context '{context}' did not accept its credentials: {_said(error)}",
            hint="Log in again or refresh the credentials of that kubeconfig context.",
        )
    translated = cluster_error(error, cluster=context, action=f"list {what}")
    if code is None and not isinstance(translated, ClusterUnavailable):  # TLS verification failed
        translated.hint = "Check the certificate authority of that kubeconfig context."
    return translated


def _said(error: httpx2.HTTPError) -> str:
    if isinstance(error, ApiError) and error.status.message:
        return truncate(error.status.message, MAX_MESSAGE_CHARS)
    return "no message"


def _list(client: Client, kind: Any, *, namespace: str | None = None) -> list[Json]:
    if namespace is None:
        found = client.list(kind, chunk_size=CHUNK_SIZE)
    else:
        found = client.list(kind, namespace=namespace, chunk_size=CHUNK_SIZE)
    return [item.to_dict() for item in found]


def _token_secret_metadata(http: httpx2.Client) -> Iterator[Json]:
    """Metadata of every legacy token Secret, page by page; data is never requested."""
    params = {"fieldSelector": f"type={TOKEN_SECRET_TYPE}", "limit": str(CHUNK_SIZE)}
    while True:
        response = http.get("api/v1/secrets", params=params, headers={"Accept": _METADATA_ONLY})
        if response.is_error:
            _raise_api_error(response)
        page = response.json()
        if page.get("kind") != "PartialObjectMetadataList":
            # Never fall back to full objects: they would carry the tokens.
            raise ClusterError(
                f"the API server answered a metadata-only list of Secrets with {page.get('kind')!r}",
                hint="kubejit only reads Secret metadata; this needs Kubernetes 1.15 or later.",
            )
        for item in page.get("items") or ():
            yield _kept_metadata(item.get("metadata") or {})
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return
        params["continue"] = token


def _raise_api_error(response: httpx2.Response) -> None:
    """As lightkube does: a JSON Status answer becomes an ``ApiError`` (whose message says why)."""
    if response.headers.get("Content-Type", "").startswith("application/json"):
        raise ApiError(request=response.request, response=response)
    response.raise_for_status()


def _kept_metadata(metadata: Json) -> Json:
    annotations = metadata.get("annotations") or {}
    return {
        "metadata": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "creationTimestamp": metadata.get("creationTimestamp"),
            "annotations": {k: annotations[k] for k in _KEPT_ANNOTATIONS if k in annotations},
        }
    }
