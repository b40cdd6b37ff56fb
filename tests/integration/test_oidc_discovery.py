"""OIDC discovery and the JWKS cache against a real issuer over HTTP (kubejit.testing.oidc_issuer)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from kubejit.clock import SystemClock
from kubejit.errors import AuthenticationFailed
from kubejit.identity.claims import ClaimMapping
from kubejit.identity.discovery import JwksCache, discover
from kubejit.identity.oidc import OIDCIssuer, OIDCVerifier
from kubejit.testing.oidc_issuer import LocalIssuer

pytestmark = pytest.mark.integration


class Ticking:
    """A monotonic clock the test moves (the cache's refresh interval), not the tokens' clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idp() -> Iterator[LocalIssuer]:
    with LocalIssuer(path="/realm") as issuer:
        yield issuer


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def _verifier(idp: LocalIssuer, http: httpx.Client, ticking: Ticking) -> tuple[OIDCVerifier, JwksCache]:
    cache = JwksCache(idp.url, http=http, min_refresh_seconds=30, monotonic=ticking)
    issuer = OIDCIssuer(url=idp.url, audience="kubejit", mapping=ClaimMapping(issuer_name="t", prefix="t:"))
    return OIDCVerifier(issuer, keys=cache, clock=SystemClock()), cache


def test_discovery_reads_the_document(idp: LocalIssuer, http: httpx.Client) -> None:
    meta = discover(http, idp.url)
    assert (meta.issuer, meta.jwks_uri) == (idp.url, idp.url + "/keys")


def test_discovery_refuses_an_issuer_that_names_another(idp: LocalIssuer, http: httpx.Client) -> None:
    with pytest.raises(AuthenticationFailed, match="names another issuer"):
        discover(http, idp.url + "/")


@pytest.mark.parametrize(
    "field", ["jwks_uri", "token_endpoint", "authorization_endpoint", "device_authorization_endpoint"]
)
def test_discovery_refuses_plain_http_endpoints_off_loopback(
    idp: LocalIssuer, http: httpx.Client, field: str
) -> None:
    idp.discovery_extra = {field: "http://idp.example/endpoint"}
    with pytest.raises(AuthenticationFailed, match=f"{field} 'http://idp.example/endpoint' must be an https"):
        discover(http, idp.url)


def test_an_oversized_discovery_document_is_refused(idp: LocalIssuer, http: httpx.Client) -> None:
    idp.discovery_extra = {"padding": "x" * (512 * 1024)}
    with pytest.raises(AuthenticationFailed, match="is larger than 512 KiB"):
        discover(http, idp.url)


def test_discovery_reads_the_endpoints(idp: LocalIssuer, http: httpx.Client) -> None:
    idp.discovery_extra = {"token_endpoint": "https://idp.example/token", "authorization_endpoint": 7}
    meta = discover(http, idp.url)
    assert (meta.token_endpoint, meta.authorization_endpoint) == ("https://idp.example/token", None)


def test_keys_are_cached_and_refetched_when_the_issuer_rotates(idp: LocalIssuer, http: httpx.Client) -> None:
    ticking = Ticking()
    verifier, cache = _verifier(idp, http, ticking)
    for _ in range(3):
        assert verifier.authenticate(idp.issue({"sub": "alice", "aud": "kubejit"})).name == "t:alice"
    assert (cache.fetches, idp.requests["/realm/keys"]) == (1, 1)
    ticking.now += 31
    idp.rotate(kty="EC")
    assert verifier.authenticate(idp.issue({"sub": "bob", "aud": "kubejit"})).name == "t:bob"
    assert cache.fetches == 2


def test_unknown_kids_refetch_at_most_once_per_interval(idp: LocalIssuer, http: httpx.Client) -> None:
    ticking = Ticking()
    verifier, cache = _verifier(idp, http, ticking)
    verifier.verify(idp.issue({"sub": "alice", "aud": "kubejit"}))
    stranger = LocalIssuer()  # its key ids differ from the real issuer's (which never published them)
    stranger.rotate()
    for _ in range(5):
        with pytest.raises(AuthenticationFailed, match="does not publish"):
            verifier.verify(stranger.issue({"iss": idp.url, "sub": "eve", "aud": "kubejit"}))
    stranger.stop()
    assert cache.fetches == 1  # the first fetch was under 30 s ago: no refetch for made-up kids
    ticking.now += 31
    # A key the issuer published meanwhile: after the interval, one refetch finds it.
    assert verifier.verify(idp.issue({"sub": "carol", "aud": "kubejit"}, key=idp.add_key()))["sub"] == "carol"
    assert cache.fetches == 2


def test_a_down_issuer_keeps_known_keys_working(idp: LocalIssuer, http: httpx.Client) -> None:
    ticking = Ticking()
    verifier, _ = _verifier(idp, http, ticking)
    token = idp.issue({"sub": "alice", "aud": "kubejit"})
    verifier.verify(token)
    idp.stop()
    ticking.now += 4000  # past max age: a refetch fails, the cached keys stay
    assert verifier.verify(token)["sub"] == "alice"


def test_an_unreachable_issuer_is_an_authentication_failure(http: httpx.Client) -> None:
    idp = LocalIssuer()  # never started: nothing listens
    verifier, _ = _verifier(idp, http, Ticking())
    token = idp.issue({"sub": "alice", "aud": "kubejit"})
    idp.stop()
    with pytest.raises(AuthenticationFailed, match="cannot fetch the OIDC discovery"):
        verifier.verify(token)
