"""One urllib opener for every request that carries a secret: a redirect is answered, never followed.

urllib would repeat the Authorization header (or a posted refresh token) to wherever a redirect
points. With this opener a 3xx raises ``urllib.error.HTTPError`` like any other error status, and
each caller says what it means for its own request. Standard library only.
"""

from __future__ import annotations

import http.client
import urllib.request
from typing import Any


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


def open_without_redirects(request: urllib.request.Request, *, timeout: float) -> http.client.HTTPResponse:
    answer: http.client.HTTPResponse = urllib.request.build_opener(_NoRedirect).open(request, timeout=timeout)
    return answer
