"""The exec plugin's calls to the broker, over urllib: stdlib only, and cheaper to import than httpx."""

from __future__ import annotations

from typing import Any

BROKER_TIMEOUT_SECONDS = 10.0


class BrokerApi:
    """The two calls the plugin needs, over urllib: stdlib only, and cheaper to import than httpx."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token

    def get_grant(self, grant_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/grants/{grant_id}", grant_id)

    def mint_token(self, grant_id: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/grants/{grant_id}/token", grant_id)

    def _call(self, method: str, path: str, grant_id: str) -> dict[str, Any]:
        import http.client
        import json
        import urllib.error
        import urllib.request

        from kubejit.errors import BrokerUnreachable

        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=b"" if method == "POST" else None,
            headers={
                "authorization": f"Bearer {self.token}",
                "accept": "application/json",
                "user-agent": "kubejit-exec-plugin",
            },
        )

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            """urllib would repeat the Authorization header to wherever a redirect points: refuse."""

            def redirect_request(self, *_: Any, **__: Any) -> None:
                return None

        try:
            with urllib.request.build_opener(NoRedirect).open(
                request, timeout=BROKER_TIMEOUT_SECONDS
            ) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            raise broker_error(exc.code, exc.read(), broker=self.url, grant_id=grant_id) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise BrokerUnreachable(f"cannot reach the kubejit broker at {self.url} ({reason})") from exc
        if not isinstance(body, dict):
            raise BrokerUnreachable(f"the kubejit broker at {self.url} sent an unexpected answer")
        return body


def broker_error(status: int, raw: bytes, *, broker: str, grant_id: str) -> Exception:
    """A problem+json answer as the matching kubejit error, with what to do about it."""
    import json

    from kubejit import errors

    try:
        problem = json.loads(raw)
    except ValueError:
        problem = {}
    detail = str(problem.get("detail") or f"HTTP {status}") if isinstance(problem, dict) else f"HTTP {status}"
    if status == 401:
        return errors.AuthenticationFailed(
            f"the broker at {broker} no longer accepts your login ({detail})",
            hint=f"Run `kubejit login --broker {broker}`, then kubectl again.",
        )
    if status in (403, 404):
        return errors.NotFound(
            f"grant {grant_id} is not yours or does not exist at {broker} ({detail})",
            hint="`kubejit grants` lists your grants; `kubejit kubeconfig --prune` removes contexts of "
            "grants that are gone.",
        )
    if status == 409:
        return errors.Conflict(detail, hint="`kubejit grants` shows the grant's state.")
    if 300 <= status < 400:
        return errors.KubejitError(
            f"the kubejit broker at {broker} answered with a redirect (HTTP {status}), which is not followed "
            "with your token",
            hint="Log in with the broker's own URL: `kubejit login --broker URL`.",
        )
    if status in (502, 503, 504):
        return errors.BrokerUnreachable(f"the kubejit broker at {broker} is unavailable ({detail})")
    return errors.KubejitError(
        f"the kubejit broker at {broker} failed: {detail}", hint="Retry; report it if it persists."
    )
