"""HMAC-SHA256 signatures for webhook deliveries, and their verification (pure).

The signed text is ``<timestamp>.<body>``: the timestamp (Unix seconds, sent in
``X-Kubejit-Timestamp``) binds the signature to a moment, so a receiver that refuses old timestamps
also refuses replays of a captured request. ``X-Kubejit-Signature: v1=<hex>``; the ``v1=`` prefix
leaves room for a new scheme (or two keys during a rotation) without breaking receivers.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Kubejit-Timestamp"
SIGNATURE_HEADER = "X-Kubejit-Signature"
SCHEME = "v1"
#: Receivers should refuse requests signed further than this from their own clock.
DEFAULT_TOLERANCE_SECONDS = 300


def sign(key: bytes, *, timestamp: int, body: bytes) -> str:
    """The value of the signature header for ``body`` sent at ``timestamp``."""
    mac = hmac.new(key, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def verify(
    key: bytes,
    *,
    timestamp: str,
    signature: str,
    body: bytes,
    now: float,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: a fresh timestamp and a matching signature (compared in constant time)."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > tolerance_seconds:
        return False
    expected = sign(key, timestamp=sent, body=body)
    offered = [part.strip() for part in signature.split(",")]
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)
