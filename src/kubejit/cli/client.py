"""HTTP client for the broker's API: problem+json answers become the matching KubejitError (the map
in ``kubejit.local.wire``, shared with the exec plugin)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kubejit.checks import is_loopback
from kubejit.errors import BrokerUnreachable, InvalidInput, KubejitError
from kubejit.local.wire import problem_error

if TYPE_CHECKING:
    import httpx  # loaded by BrokerClient: `kubejit --help` need not pay for it


def _error_from(response: httpx.Response) -> KubejitError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    return problem_error(response.status_code, body, fallback=response.reason_phrase or None)


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
        import httpx

        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        import httpx

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
