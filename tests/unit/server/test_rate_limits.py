"""Token buckets with a fake clock: burst, refill, Retry-After, bounded memory, 0 = off."""

from __future__ import annotations

import re

import pytest

from kubejit.errors import RateLimited
from kubejit.server.rate_limits import Buckets, RateLimits, RequestLimiter, TokenBucket

pytestmark = pytest.mark.unit


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_admits_its_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(capacity=3, rate=0.5, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(2.0)  # one token every 2 s
    assert bucket.take(1.0) == pytest.approx(1.0)  # a refused request takes nothing
    assert bucket.take(2.0) == 0.0
    assert bucket.take(2.0) == pytest.approx(2.0)
    assert bucket.wait(100.0) == 0.0 and [bucket.take(100.0) for _ in range(4)][-1] > 0  # capped at 3


def test_buckets_are_per_key_and_bounded_least_recently_used_first() -> None:
    clock = FakeMonotonic()
    buckets = Buckets(2, max_keys=3, monotonic=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, pytest.approx(30.0)]
    assert buckets.take("b") == 0.0
    for key in ("c", "d", "e"):
        buckets.take(key)
    assert len(buckets) == 3  # "a" (least recently used) was dropped...
    assert buckets.take("a") == 0.0  # ...and starts again full


def test_a_limit_of_zero_is_off() -> None:
    buckets = Buckets(0, max_keys=3, monotonic=FakeMonotonic())
    assert all(buckets.take("a") == 0.0 for _ in range(10_000)) and len(buckets) == 0


def test_the_limiter_refuses_with_retry_after_and_names_the_limit() -> None:
    clock = FakeMonotonic()
    limiter = RequestLimiter(
        RateLimits(
            per_source_per_minute=2, per_principal_per_minute=1, auth_failures_per_source_per_minute=1
        ),
        monotonic=clock,
    )
    limiter.admit_source("127.0.0.1")
    limiter.admit_source("127.0.0.1")
    with pytest.raises(RateLimited, match=re.escape("from 127.0.0.1 (limit 2 a minute)")) as err:
        limiter.admit_source("127.0.0.1")
    assert (err.value.http_status, err.value.retry_after) == (429, 30)
    limiter.admit_source("127.0.0.2")  # another source has its own bucket

    limiter.admit_principal("alice")
    with pytest.raises(RateLimited, match="by alice") as err:
        limiter.admit_principal("alice")
    assert err.value.retry_after == 60

    limiter.check_auth_failures("127.0.0.3")  # checking spends nothing
    limiter.check_auth_failures("127.0.0.3")
    assert limiter.auth_failed("127.0.0.3") is None
    with pytest.raises(RateLimited, match=re.escape("failed authentications from 127.0.0.3")):
        limiter.check_auth_failures("127.0.0.3")
    refusal = limiter.auth_failed("127.0.0.3")
    assert refusal is not None and refusal.retry_after == 60 and "kubejit login" in (refusal.hint or "")
    clock.now += 60
    limiter.check_auth_failures("127.0.0.3")
