"""HTTP client for the broker's API: problem+json answers become the matching KubejitError."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from kubejit import errors
from kubejit.checks import is_loopback
from kubejit.errors import BrokerUnreachable, InvalidInput, KubejitError

_BY_CODE: dict[str, type[KubejitError]] = {}
for _cls in (
    errors.InvalidInput,
    errors.AuthenticationFailed,
    errors.PermissionDenied,
    errors.ApprovalRefused,
    errors.Locked,
    errors.NotFound,
    errors.Conflict,
    errors.InvalidTransition,
    errors.ClusterError,
    errors.ClusterUnavailable,
    errors.ClusterForbidden,
    errors.ClusterConflict,
    errors.ConfigError,
    errors.AuditUnavailable,
    errors.RateLimited,
    errors.TooManyOpenGrants,
):
    _BY_CODE[_cls.code] = _cls
_BY_STATUS = {
    400: errors.InvalidInput,
    401: errors.AuthenticationFailed,
    403: errors.PermissionDenied,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.InvalidInput,
    422: errors.InvalidInput,
    429: errors.RateLimited,
}


def _error_from(response: httpx.Response) -> KubejitError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or response.reason_phrase or f"HTTP {response.status_code}")
    hint = body.get("hint")
    code = str(body.get("code", ""))
    if code == errors.RequestDenied.code:
        return errors.RequestDenied(detail, rule=str(body.get("rule", "")), hint=hint)
    cls = _BY_CODE.get(code) or _BY_STATUS.get(response.status_code, KubejitError)
    return cls(detail, hint=hint)


def check_broker_url(url: str) -> None:
    """A bearer token goes over https, or plain http to this machine only (as `kubejit ci` requires)."""
    parts = urlsplit(url)
    if (parts.scheme == "https" and parts.hostname) or (
        parts.scheme == "http" and is_loopback(parts.hostname)
    ):
        return
    raise InvalidInput(
        f"the broker URL must be https:// (http:// only on a loopback address), not {url!r}",
        hint="Your login token would cross the network in clear text: use the broker's https:// address.",
    )


class BrokerClient:
    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"user-agent": "kubejit-cli"}
        if token:
            check_broker_url(base_url)
            headers["authorization"] = f"Bearer {token}"
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.TransportError as exc:
            raise BrokerUnreachable(f"cannot reach the kubejit broker at {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise _error_from(response)
        try:
            if response.status_code < 300:
                return response.json()
        except ValueError:
            pass
        # A redirect (not followed: it would carry the token elsewhere) or a page that is not the API.
        raise BrokerUnreachable(
            f"{self.base_url} did not answer like a kubejit broker "
            f"(HTTP {response.status_code}, {response.headers.get('content-type') or 'no content type'})",
            hint="Check --broker / KUBEJIT_BROKER: it is the broker's own URL, e.g. https://kubejit.example.com.",
        )
