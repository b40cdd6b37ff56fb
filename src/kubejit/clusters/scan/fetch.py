"""The scanner's only I/O: read a cluster's RBAC objects, ServiceAccounts and token-Secret metadata.

Six lists run in parallel (one API call per 500 objects each), with whatever identity the kubeconfig
context holds; reading needs only `list` on those kinds. Two more, kubejit's admission policies and
their bindings, are read when that identity may (the guard-rail check is skipped otherwise). The
answers stay plain JSON (the scanner parses them into its own model). ServiceAccounts and legacy
token Secrets are listed metadata-only: the request asks the API server for
``PartialObjectMetadataList`` (filtered to ``type=kubernetes.io/service-account-token``), so Secret
data never crosses the wire, and of that metadata only name, namespace, age and owner are kept (an
annotation such as ``kubectl.kubernetes.io/last-applied-configuration`` could hold the token).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import yaml
from lightkube import ConfigError as LightkubeConfigError
from lightkube import KubeConfig
from lightkube.config.client_adapter import Client as HttpClient
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.kubeconfig import SingleConfig

from kubejit.clusters.errors import MAX_MESSAGE_CHARS, cluster_error
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
    http = HttpClient(config, ConnectionParams(trust_env=True))
    jobs: dict[str, Callable[[], list[Json]]] = {
        "cluster_roles": lambda: list(_pages(http, f"{_RBAC}/clusterroles")),
        "roles": lambda: list(_pages(http, f"{_RBAC}/roles")),
        "cluster_role_bindings": lambda: list(_pages(http, f"{_RBAC}/clusterrolebindings")),
        "role_bindings": lambda: list(_pages(http, f"{_RBAC}/rolebindings")),
        "service_accounts": lambda: list(_pages(http, "api/v1/serviceaccounts", metadata_only=True)),
        "token_secrets": lambda: [
            _kept_metadata(item)
            for item in _pages(http, "api/v1/secrets", metadata_only=True, field_selector=_TOKEN_SECRETS)
        ],
    }
    optional: dict[str, Callable[[], list[Json]]] = {
        "admission_policies": lambda: list(_pages(http, f"{_ADMISSION}/validatingadmissionpolicies")),
        "admission_bindings": lambda: list(_pages(http, f"{_ADMISSION}/validatingadmissionpolicybindings")),
    }
    try:
        with ThreadPoolExecutor(
            max_workers=len(jobs) + len(optional), thread_name_prefix="kubejit-scan"
        ) as pool:
            futures = {name: pool.submit(_reporting(name, job, say, cluster)) for name, job in jobs.items()}
            maybe = {name: pool.submit(_unless_refused(name, job, say)) for name, job in optional.items()}
            lists = {name: future.result() for name, future in futures.items()}
            admission = {name: future.result() for name, future in maybe.items()}
    finally:
        http.close()
    return snapshot_from_objects(
        cluster,
        **lists,
        admission_policies=admission["admission_policies"],
        admission_bindings=admission["admission_bindings"],
    )


def _unless_refused(
    name: str, job: Callable[[], list[Json]], say: Progress
) -> Callable[[], list[Json] | None]:
    """A list the scan can do without (kubejit's admission policies): None if it may not be read."""
    what = name.replace("_", " ")

    def run() -> list[Json] | None:
        try:
            items = job()
        except (_ApiAnswer, httpx2.HTTPError) as e:
            said = e.message if isinstance(e, _ApiAnswer) else str(e)
            say(f"{what}: not read ({truncate(said, 120)}); kubejit's guard rails are not checked")
            return None
        say(f"{len(items)} {what}")
        return items

    return run


def _reporting(
    name: str, job: Callable[[], list[Json]], say: Progress, cluster: str
) -> Callable[[], list[Json]]:
    what = name.replace("_", " ")

    def run() -> list[Json]:
        try:
            items = job()
        except _ApiAnswer as e:
            raise scan_error(e.code, e.message, context=cluster, what=what) from None
        except httpx2.HTTPError as e:
            raise connection_error(e, context=cluster, what=what) from e
        say(f"{len(items)} {what}")
        return items

    return run


_READ_HINT = (
    "A scan lists ClusterRoles, Roles, their bindings, ServiceAccounts and (metadata only) Secrets in "
    "every namespace: use a --context allowed to `list` them cluster-wide (docs/scan.md has a "
    "read-only ClusterRole for it)."
)


def scan_error(code: int, message: str, *, context: str, what: str) -> ClusterError:
    """An API refusal while reading, worded for the person scanning with their own credentials."""
    said = truncate(message, MAX_MESSAGE_CHARS) or "no message"
    if code == 403:
        return ClusterForbidden(f"context '{context}' may not list {what}: {said}", hint=_READ_HINT)
    if code == 401:
        return ClusterError(
            f"the cluster of context '{context}' did not accept its credentials: {said}",
            hint="Log in again or refresh the credentials of that kubeconfig context.",
        )
    if code == 429 or code >= 500:
        return ClusterUnavailable(
            f"the cluster of context '{context}' could not list {what} now ({code}): {said}"
        )
    return ClusterError(f"the cluster of context '{context}' answered {code} to list {what}: {said}")


def connection_error(error: httpx2.HTTPError, *, context: str, what: str) -> ClusterError:
    """No answer: unreachable (``ClusterUnavailable``), or a TLS certificate that does not verify."""
    translated = cluster_error(error, cluster=context, action=f"list {what}")
    if not isinstance(translated, ClusterUnavailable):  # TLS verification failed
        translated.hint = "Check the certificate authority of that kubeconfig context."
    return translated


class _ApiAnswer(Exception):
    """An error answer of the API server: its HTTP status and the message of its Status, if any."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code, self.message = code, message


_RBAC = "apis/rbac.authorization.k8s.io/v1"
_ADMISSION = "apis/admissionregistration.k8s.io/v1"
_TOKEN_SECRETS = f"type={TOKEN_SECRET_TYPE}"


def _pages(
    http: httpx2.Client, path: str, *, metadata_only: bool = False, field_selector: str = ""
) -> Iterator[Json]:
    """Every item of a cluster-wide list, page by page, as plain JSON.

    Plain JSON rather than lightkube's models: the scanner wants dicts anyway, and decoding models
    in several threads at once crashed the interpreter (msgspec builds its type information lazily).
    """
    params = {"limit": str(CHUNK_SIZE)}
    if field_selector:
        params["fieldSelector"] = field_selector
    headers = {"Accept": _METADATA_ONLY if metadata_only else "application/json"}
    while True:
        response = http.get(path, params=params, headers=headers)
        if response.is_error:
            raise _ApiAnswer(response.status_code, _status_message(response))
        page = _json_list(response, path)
        if metadata_only and page.get("kind") != "PartialObjectMetadataList":
            # Never fall back to full objects: Secrets would carry their tokens.
            raise ClusterError(
                f"the API server answered a metadata-only list of {path} with {page.get('kind')!r}",
                hint="kubejit only reads Secret metadata; this needs Kubernetes 1.15 or later.",
            )
        yield from page.get("items") or ()
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return
        params["continue"] = token


def _json_list(response: httpx2.Response, path: str) -> Json:
    """The answer as a JSON object; anything else means the address is not a Kubernetes API server."""
    try:
        page = json.loads(response.content)
    except ValueError:
        page = None
    if not isinstance(page, dict):
        raise ClusterError(
            f"the answer to list {path} is not JSON from a Kubernetes API server",
            hint="Check the server address of that kubeconfig context.",
        )
    return page


def _status_message(response: httpx2.Response) -> str:
    try:
        status = json.loads(response.content)
    except ValueError:
        return response.reason_phrase
    message = status.get("message") if isinstance(status, dict) else None
    return str(message) if message else response.reason_phrase


def _kept_metadata(item: Json) -> Json:
    """Name, namespace, age and owner of a token Secret; nothing else of its metadata is kept."""
    metadata = item.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    return {
        "metadata": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "creationTimestamp": metadata.get("creationTimestamp"),
            "annotations": {k: annotations[k] for k in _KEPT_ANNOTATIONS if k in annotations},
        }
    }
