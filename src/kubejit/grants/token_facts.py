"""Facts about a freshly minted ServiceAccount token that the audit trail keeps instead of the token.

The API server's audit log names the token's ``jti`` and the ServiceAccount's ``uid``; recording
both at mint time is what lets `kubejit audit correlate` tie each API request to a grant. The
claims are read WITHOUT verifying the signature: the API server has just issued the token.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def _claims(token: str) -> dict[str, Any]:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def service_account_uid(token: str) -> str | None:
    """``kubernetes.io.serviceaccount.uid`` of a TokenRequest token, or None if it has none."""
    k8s = _claims(token).get("kubernetes.io")
    account = k8s.get("serviceaccount") if isinstance(k8s, dict) else None
    uid = account.get("uid") if isinstance(account, dict) else None
    return uid if isinstance(uid, str) and uid else None
