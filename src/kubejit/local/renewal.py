"""Renewing an OIDC login's ID token with its refresh token (RFC 6749 6), over urllib.

The CLI and the exec plugin both renew before calling the broker; the standard library keeps the
plugin from loading httpx for one form POST, and keeps ``kubejit.local`` below ``kubejit.cli``.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request

from kubejit.errors import AuthenticationFailed
from kubejit.local.no_redirects import open_without_redirects

HTTP_TIMEOUT = 15.0


def refresh_id_token(token_endpoint: str, client_id: str, refresh_token: str) -> tuple[str, str | None]:
    """(new ID token, the refresh token to keep: a rotated one, or the one sent)."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    request = urllib.request.Request(
        token_endpoint,
        method="POST",
        data=urllib.parse.urlencode(form).encode(),
        headers={"accept": "application/json", "content-type": "application/x-www-form-urlencoded"},
    )
    try:
        # A refresh token is posted to the token endpoint only, never to wherever a redirect points.
        with open_without_redirects(request, timeout=HTTP_TIMEOUT) as answer:
            raw = answer.read()
    except urllib.error.HTTPError as exc:  # any answer but 200 (a redirect included)
        raise AuthenticationFailed(
            "your login expired and could not be renewed", hint="Run `kubejit login` again."
        ) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        raise AuthenticationFailed(
            f"cannot reach the identity provider at {token_endpoint}: {type(exc).__name__}"
        ) from exc
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    id_token = body.get("id_token") if isinstance(body, dict) else None
    if not isinstance(id_token, str):
        raise AuthenticationFailed("the identity provider answered without an ID token")
    rotated = body.get("refresh_token")
    return id_token, rotated if isinstance(rotated, str) else refresh_token
