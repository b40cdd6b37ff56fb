"""Request rate limits per source IP and per principal, checked before the broker writes anything.

Every audited request costs a chained write under the database's one writer lock; with fail-closed
audit a flood of them stalls every activation, break-glass included. So each source IP and each
principal get a token bucket (``per minute`` is both the refill rate and the burst), and a source's
failed authentications get a smaller one, consumed only by failures. Refusals are 429 with
``Retry-After`` (``errors.RateLimited``).

The buckets live in this process's memory (an LRU of at most ``max_keys`` per kind): with several
replicas each enforces its own limits, so a client may get up to N replicas times the limit.
Loopback is not exempt: a limit of 0 turns that limit off.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from kubejit import metrics
from kubejit.errors import RateLimited
from kubejit.server.problems import error_response

#: Paths no limit applies to: liveness probes come from the kubelet (or a test harness), often.
UNLIMITED_PATHS = frozenset({"/healthz", "/livez", "/readyz"})


@dataclass(frozen=True)
class RateLimits:
    """The three limits (per minute; 0 = off) and how many keys each kind remembers."""

    per_source_per_minute: int = 1200
    per_principal_per_minute: int = 600
    auth_failures_per_source_per_minute: int = 60
    max_keys: int = 10_000


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; a request takes one."""

    __slots__ = ("_capacity", "_level", "_rate", "_updated")

    def __init__(self, *, capacity: float, rate: float, now: float) -> None:
        self._capacity = capacity
        self._rate = rate
        self._level = capacity
        self._updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._level = min(self._capacity, self._level + elapsed * self._rate)
        self._updated = now

    def wait(self, now: float) -> float:
        """Seconds until one token is there (0: one is there now); takes nothing."""
        self._refill(now)
        return 0.0 if self._level >= 1 else (1 - self._level) / self._rate

    def take(self, now: float) -> float:
        """Take a token if there is one (returns 0), else the seconds until there is one."""
        waiting = self.wait(now)
        if waiting == 0:
            self._level -= 1
        return waiting


class Buckets:
    """One bucket per key (source IP, principal), the least recently used dropped past ``max_keys``.

    A dropped key starts again with a full bucket: memory stays bounded whatever the number of keys.
    """

    def __init__(self, per_minute: int, *, max_keys: int, monotonic: Callable[[], float]) -> None:
        self._per_minute = per_minute
        self._max_keys = max_keys
        self._monotonic = monotonic
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(capacity=self._per_minute, rate=self._per_minute / 60, now=now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: str) -> float:
        """0 when admitted (a token taken); else seconds to wait. A limit of 0 admits everything."""
        if self._per_minute <= 0:
            return 0.0
        with self._lock:
            now = self._monotonic()
            return self._bucket(key, now).take(now)

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token (0: it has one now); takes nothing."""
        if self._per_minute <= 0:
            return 0.0
        with self._lock:
            now = self._monotonic()
            return self._bucket(key, now).wait(now)


_FIX_CREDENTIALS = (
    "Fix the credentials (`kubejit login`, or a fresh job token), wait Retry-After seconds, retry."
)


def _refuse(wait: float, what: str, hint: str, *, limit: str) -> None:
    if wait > 0:
        metrics.refused(limit)
        raise RateLimited(what, retry_after=math.ceil(wait), hint=hint)


class RequestLimiter:
    """The broker's limits: every request per source, every authenticated request per principal, and
    failed authentications per source.

    A bearer token is verified first (no write), so a valid token is never refused for its
    neighbours' failures; a failure past the allowance is a 429 and is only counted in the
    ``auth.failed`` summary. A token exchange writes its refusal itself, so there the allowance is
    checked before the token is looked at.
    """

    def __init__(self, limits: RateLimits, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        keys = limits.max_keys
        self._sources = Buckets(limits.per_source_per_minute, max_keys=keys, monotonic=monotonic)
        self._principals = Buckets(limits.per_principal_per_minute, max_keys=keys, monotonic=monotonic)
        self._failures = Buckets(
            limits.auth_failures_per_source_per_minute, max_keys=keys, monotonic=monotonic
        )

    def admit_source(self, source: str | None) -> None:
        _refuse(
            self._sources.take(source or "unknown"),
            f"too many requests from {source or 'this source'} "
            f"(limit {self.limits.per_source_per_minute} a minute)",
            "Wait the number of seconds in Retry-After, then retry.",
            limit="source",
        )

    def admit_principal(self, name: str) -> None:
        _refuse(
            self._principals.take(name),
            f"too many requests by {name} (limit {self.limits.per_principal_per_minute} a minute)",
            "Wait the number of seconds in Retry-After, then retry; a script should pace its calls.",
            limit="principal",
        )

    def check_auth_failures(self, source: str | None) -> None:
        """Refuse a source whose failed authentications used up its allowance, before verifying."""
        _refuse(
            self._failures.wait(source or "unknown"),
            f"too many failed authentications from {source or 'this source'} "
            f"(limit {self.limits.auth_failures_per_source_per_minute} a minute)",
            _FIX_CREDENTIALS,
            limit="auth_failures",
        )

    def auth_failed(self, source: str | None) -> RateLimited | None:
        """Spend one failed authentication of ``source``'s allowance; the refusal when none was left."""
        wait = self._failures.take(source or "unknown")
        if wait == 0:
            return None
        metrics.refused("auth_failures")
        return RateLimited(
            f"too many failed authentications from {source or 'this source'} "
            f"(limit {self.limits.auth_failures_per_source_per_minute} a minute)",
            retry_after=math.ceil(wait),
            hint=_FIX_CREDENTIALS,
        )


class LimitSources:
    """ASGI middleware: the per-source limit, before routing, body parsing or authentication."""

    def __init__(self, app: ASGIApp, *, limiter: Callable[[], RequestLimiter | None]) -> None:
        self.app = app
        self._limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self._limiter()
        if scope["type"] != "http" or limiter is None or scope.get("path") in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        try:
            limiter.admit_source(client[0] if client else None)
        except RateLimited as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)
