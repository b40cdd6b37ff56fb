"""HTTP client for the broker's API: problem+json answers become the matching KubejitError (the map
in ``kubejit.local.wire``, shared with the exec plugin).

Standard library only (urllib), as the exec plugin: httpx alone cost ~0.2 s of every command's
start. Redirects are never followed (they would carry the token elsewhere)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kubejit.checks import is_loopback
from kubejit.errors import BrokerUnreachable, InvalidInput, KubejitError
from kubejit.local.wire import problem_error

if TYPE_CHECKING:
    from email.message import Message

#: What `quote` leaves in a path: RFC 3986 path characters; `?` and `#` in an id stay in the path.
_PATH_SAFE = "/:@!$&'()*+,;=~%"


def _error_from(status: int, raw: bytes, reason: str | None = None) -> KubejitError:
    import json

    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    return problem_error(status, body, fallback=reason or None)


def _lower(headers: Message) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


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


def _query_value(value: object) -> str:
    """Query values written as httpx wrote them: booleans lower case, None empty."""
    if value is True or value is False:
        return "true" if value else "false"
    return "" if value is None else str(value)


def _query(params: dict[str, Any] | None) -> str:
    from urllib.parse import urlencode

    pairs = [
        (key, _query_value(item))
        for key, value in (params or {}).items()
        for item in (value if isinstance(value, (list, tuple)) else [value])
    ]
    return f"?{urlencode(pairs)}" if pairs else ""


class BrokerClient:
    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        self._headers = {"user-agent": "kubejit-cli", "accept": "application/json"}
        if token:
            check_broker_url(base_url)
            self._headers["authorization"] = f"Bearer {token}"
        self.base_url = base_url
        self.timeout = timeout

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *_: object) -> None:
        return None  # one connection per call, closed with it

    def call(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        import json as jsonlib
        from urllib.parse import quote

        url = self.base_url.rstrip("/") + quote(path, safe=_PATH_SAFE) + _query(params)
        headers = dict(self._headers)
        data: bytes | None = None
        if json is not None:
            data = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode()
            headers["content-type"] = "application/json"
        elif method in ("POST", "PUT", "PATCH"):
            data = b""
        status, reason, answer_headers, raw = self._send(method, url, headers, data)
        if status >= 400:
            raise _error_from(status, raw, reason)
        try:
            if status < 300:
                return jsonlib.loads(raw)
        except ValueError:
            pass
        # A redirect (not followed: it would carry the token elsewhere) or a page that is not the API.
        raise BrokerUnreachable(
            f"{self.base_url} did not answer like a kubejit broker "
            f"(HTTP {status}, {answer_headers.get('content-type') or 'no content type'})",
            hint="Check --broker / KUBEJIT_BROKER: it is the broker's own URL, e.g. https://kubejit.example.com.",
        )

    def _send(
        self, method: str, url: str, headers: dict[str, str], data: bytes | None
    ) -> tuple[int, str, dict[str, str], bytes]:
        """One request: status, reason phrase, headers and body of whatever came back (an HTTP error or
        a redirect included); no answer at all is BrokerUnreachable."""
        parts = urlsplit(url)
        if parts.scheme == "http" and is_loopback(parts.hostname):
            return self._send_plain(method, url, headers, data)
        import http.client
        import urllib.error
        import urllib.request

        from kubejit.local.no_redirects import open_without_redirects

        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with open_without_redirects(request, timeout=self.timeout) as answer:
                return answer.status, answer.reason, _lower(answer.headers), answer.read()
        except urllib.error.HTTPError as exc:  # >= 300 (redirects are not followed)
            try:
                with exc:
                    return exc.code, exc.reason, _lower(exc.headers), exc.read()
            except (OSError, http.client.HTTPException) as lost:
                raise self._unreachable(lost) from lost
        except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
            raise self._unreachable(exc) from exc

    def _send_plain(
        self, method: str, url: str, headers: dict[str, str], data: bytes | None
    ) -> tuple[int, str, dict[str, str], bytes]:
        """Plain http to this machine: one socket, no http.client or ssl to import (their start-up
        is most of what a broker command would cost), and no proxy (urllib would send a loopback
        request to $HTTP_PROXY)."""
        from kubejit.local import plain_http

        parts = urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += f"?{parts.query}"
        try:
            return plain_http.request(
                parts.hostname or "", parts.port or 80, method, target, headers, data, timeout=self.timeout
            )
        except (OSError, ValueError) as exc:  # ValueError: a port that is not a number
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: Exception) -> BrokerUnreachable:
        reason = getattr(exc, "reason", None) or exc
        return BrokerUnreachable(f"cannot reach the kubejit broker at {self.base_url}: {reason}")
