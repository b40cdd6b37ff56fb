"""The exec plugin's calls to the broker, over urllib: stdlib only, and cheaper to import than httpx."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from kubejit import errors
from kubejit.local.wire import problem_error

if TYPE_CHECKING:
    from kubejit.local.wire import GrantWire, TokenWire

BROKER_TIMEOUT_SECONDS = 10.0


class BrokerApi:
    """The plugin's calls: ``mint_token`` (one round trip when the grant is active), ``get_grant`` only
    to explain why there is no token."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token

    def get_grant(self, grant_id: str) -> GrantWire:
        return cast("GrantWire", self._call("GET", f"/v1/grants/{grant_id}", grant_id))

    def mint_token(self, grant_id: str) -> TokenWire:
        return cast("TokenWire", self._call("POST", f"/v1/grants/{grant_id}/token", grant_id))

    def _call(self, method: str, path: str, grant_id: str) -> dict[str, Any]:
        import http.client
        import json
        import urllib.error
        import urllib.request

        from kubejit.errors import BrokerUnreachable
        from kubejit.local.no_redirects import open_without_redirects

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
        try:
            with open_without_redirects(request, timeout=BROKER_TIMEOUT_SECONDS) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            raise broker_error(exc.code, exc.read(), broker=self.url, grant_id=grant_id) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise BrokerUnreachable(f"cannot reach the kubejit broker at {self.url} ({reason})") from exc
        if not isinstance(body, dict):
            raise BrokerUnreachable(f"the kubejit broker at {self.url} sent an unexpected answer")
        return body


def broker_error(status: int, raw: bytes, *, broker: str, grant_id: str) -> errors.KubejitError:
    """A problem+json answer as the kubejit error its code names (the map the CLI uses too), worded
    for someone who ran kubectl: what happened at which broker, and what to do about it."""
    import json

    try:
        problem = json.loads(raw)
    except ValueError:
        problem = {}
    if 300 <= status < 400:
        return errors.KubejitError(
            f"the kubejit broker at {broker} answered with a redirect (HTTP {status}), which is not followed "
            "with your token",
            hint="Log in with the broker's own URL: `kubejit login --broker URL`.",
        )
    error = problem_error(status, problem)
    detail = error.message
    if isinstance(error, errors.AuthenticationFailed):
        return _worded(
            error,
            f"the broker at {broker} no longer accepts your login ({detail})",
            f"Run `kubejit login --broker {broker}`, then kubectl again.",
        )
    if isinstance(error, (errors.Locked, errors.RequestDenied)):
        # Locked by an admin, or policy no longer allows this grant for you: the broker's hint says what next.
        return _worded(
            error, f"the broker at {broker} refused a token for grant {grant_id}: {detail}", error.hint
        )
    if isinstance(error, errors.RateLimited):
        # Handled like an outage (refresh backs off; a still-valid cached token keeps working).
        return _worded(
            error, f"the kubejit broker at {broker} is refusing requests for now ({detail})", error.hint
        )
    if isinstance(error, (errors.NotFound, errors.PermissionDenied)):
        return _worded(
            error,
            f"grant {grant_id} is not yours or does not exist at {broker} ({detail})",
            "`kubejit grants` lists your grants; `kubejit kubeconfig --prune` removes contexts of "
            "grants that are gone.",
        )
    if isinstance(error, errors.Conflict):
        return _worded(error, detail, "`kubejit grants` shows the grant's state.")
    if isinstance(error, errors.BrokerUnreachable):
        return _worded(error, f"the kubejit broker at {broker} is unavailable ({detail})", error.hint)
    if type(error) is errors.KubejitError:
        return _worded(
            error, f"the kubejit broker at {broker} failed: {detail}", "Retry; report it if it persists."
        )
    return error  # its own message and the broker's hint say it best (store or audit unavailable, …)


def _worded(error: errors.KubejitError, message: str, hint: str | None) -> errors.KubejitError:
    """The same error (class, code, exit code), with the plugin's wording."""
    error.message, error.hint, error.args = message, hint, (message,)
    return error
