"""Kubernetes API failures → the kubejit error tree, so callers decide by type, never by status code.

Transient failures (no connection, 429, 5xx) become ``ClusterUnavailable`` and are retried by the
workers; a 403 means the broker's own RBAC is short (``ClusterForbidden``, naming what was refused);
a 409 is a ``ClusterConflict``. A 404 is the caller's business (delete-if-exists, get-or-none), so
``is_not_found`` lets it check. The Status payload is logged at debug only when it is a real Status,
truncated; it never holds a token (TokenRequest failures carry no token).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
from lightkube import ApiError

from kubejit import metrics
from kubejit.clusters.objects import truncate
from kubejit.errors import ClusterConflict, ClusterError, ClusterForbidden, ClusterUnavailable

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 400
MAX_LOGGED_CHARS = 1000
ADMISSION_HINT = (
    "An admission policy of the cluster refused it: kubejit only creates bindings of its own grant "
    "accounts, outside its own namespaces (deploy/rbac.yaml). Request another namespace or role."
)
RBAC_HINT = (
    "Apply deploy/rbac.yaml to cluster '{cluster}' (its grant namespace must exist first), and keep "
    "the `bind` resourceNames there in sync with the roles of your policy."
)


@contextmanager
def translated(*, cluster: str, action: str, passing: Collection[int] = ()) -> Iterator[None]:
    """Run a block of API calls; any HTTP failure leaves it as a kubejit ``ClusterError``, except an
    API answer whose status is in ``passing`` (404, 409), which stays an ``ApiError`` for the caller.
    Each block is timed, and its failure counted by kind, for /metrics."""
    started = time.perf_counter()
    failed: str | None = None
    try:
        yield
    except ApiError as e:
        if status_code(e) in passing:
            raise
        error = cluster_error(e, cluster=cluster, action=action)
        failed = _kind(error)
        raise error from e
    except httpx2.HTTPError as e:
        error = cluster_error(e, cluster=cluster, action=action)
        failed = _kind(error)
        raise error from e
    finally:
        seconds = time.perf_counter() - started
        metrics.observe_cluster_call(cluster=cluster, action=action, seconds=seconds, error=failed)


def _kind(error: ClusterError) -> str:
    for kind, name in ((ClusterUnavailable, "unavailable"), (ClusterForbidden, "forbidden")):
        if isinstance(error, kind):
            return name
    return "conflict" if isinstance(error, ClusterConflict) else "error"


def cluster_error(error: httpx2.HTTPError, *, cluster: str, action: str) -> ClusterError:
    """The kubejit error for one failed call; ``action`` says what the broker was doing ("create …")."""
    if not isinstance(error, httpx2.HTTPStatusError):
        return _connection_error(error, cluster=cluster, action=action)
    _log_status(error, cluster=cluster)
    code = status_code(error) or error.response.status_code
    said = truncate(_server_message(error), MAX_MESSAGE_CHARS)
    if code == 429 or code >= 500:
        return ClusterUnavailable(f"cluster '{cluster}' could not {action} now ({code}): {said}")
    if code == 403:
        by_policy = "ValidatingAdmissionPolicy" in said
        return ClusterForbidden(
            f"cluster '{cluster}' refused to let the broker {action}: {said}",
            hint=ADMISSION_HINT if by_policy else RBAC_HINT.format(cluster=cluster),
        )
    if code == 409:
        return ClusterConflict(f"cluster '{cluster}' reported a conflict while trying to {action}: {said}")
    if code == 401:
        return ClusterError(
            f"cluster '{cluster}' did not accept the broker's credentials ({action}): {said}",
            hint="Check the kubeconfig or in-cluster ServiceAccount the broker uses for this cluster.",
        )
    return ClusterError(f"cluster '{cluster}' answered {code} when trying to {action}: {said}")


def _connection_error(error: httpx2.HTTPError, *, cluster: str, action: str) -> ClusterError:
    """No answer: transient, unless TLS verification failed, which no retry will fix."""
    tls = _tls_failure(error)
    if tls is not None:
        return ClusterError(
            f"cannot verify the TLS certificate of cluster '{cluster}' (trying to {action}): {tls}",
            hint="Check the certificate authority in the broker's kubeconfig for this cluster.",
        )
    return ClusterUnavailable(
        f"cannot reach cluster '{cluster}' to {action}: {type(error).__name__}: {error}"
    )


def _tls_failure(error: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = error
    for _ in range(10):  # httpx2 → httpcore2 → ssl: a short chain; never loop forever
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def status_code(error: BaseException) -> int | None:
    """The HTTP status of an API failure, or None for connection errors and anything else."""
    if isinstance(error, ApiError) and error.status.code:
        return error.status.code
    if isinstance(error, httpx2.HTTPStatusError):
        return error.response.status_code
    return None


def is_not_found(error: BaseException) -> bool:
    return status_code(error) == 404


def is_already_exists(error: BaseException) -> bool:
    return status_code(error) == 409 and _reason(error) == "AlreadyExists"


def _reason(error: BaseException) -> str | None:
    if isinstance(error, ApiError):
        return error.status.reason
    return None


def _server_message(error: httpx2.HTTPStatusError) -> str:
    if isinstance(error, ApiError) and error.status.message:
        return error.status.message
    return error.response.reason_phrase or "no message"


def _log_status(error: httpx2.HTTPStatusError, *, cluster: str) -> None:
    """Log the API's Status payload, only when it is one (a proxy's HTML page is not worth keeping)."""
    payload = _json_or_none(error.response)
    if isinstance(payload, dict) and payload.get("kind") == "Status":
        text = truncate(str(payload), MAX_LOGGED_CHARS)
        log.debug("cluster %s answered %s: %s", cluster, error.response.status_code, text)


def _json_or_none(response: httpx2.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
