"""OIDC discovery (``/.well-known/openid-configuration``) and an issuer's signing keys (JWKS), over httpx.

The I/O half of OIDC verification: the broker and the CLI both read provider metadata here; the
broker keeps keys in a ``JwksCache`` that refetches when a token names a key it has not seen (the
IdP rotated), at most once per ``min_refresh_seconds`` so a flood of made-up ``kid``s cannot turn
the broker into a load generator against the IdP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.jwk import KeySet

from kubejit.checks import check_url
from kubejit.errors import AuthenticationFailed, ConfigError

MAX_DOCUMENT_BYTES = 512 * 1024


@dataclass(frozen=True)
class ProviderMetadata:
    """What kubejit uses of an OIDC discovery document."""

    issuer: str
    jwks_uri: str
    token_endpoint: str | None = None
    authorization_endpoint: str | None = None
    device_authorization_endpoint: str | None = None


def _get_json(http: httpx.Client, url: str, *, what: str) -> dict[str, Any]:
    try:
        response = http.get(url, headers={"accept": "application/json"})
    except httpx.HTTPError as exc:
        raise AuthenticationFailed(
            f"cannot fetch the {what} at {url}: {type(exc).__name__}",
            hint="The identity provider is unreachable from the broker; try again or check its URL.",
        ) from exc
    if response.status_code != 200:
        raise AuthenticationFailed(f"the {what} at {url} answered HTTP {response.status_code}")
    if len(response.content) > MAX_DOCUMENT_BYTES:
        raise AuthenticationFailed(f"the {what} at {url} is larger than {MAX_DOCUMENT_BYTES // 1024} KiB")
    try:
        body = response.json()
    except ValueError as exc:
        raise AuthenticationFailed(f"the {what} at {url} is not JSON") from exc
    if not isinstance(body, dict):
        raise AuthenticationFailed(f"the {what} at {url} is not a JSON object")
    return body


def discover(http: httpx.Client, issuer: str) -> ProviderMetadata:
    """Fetch and check the discovery document: its ``issuer`` must be exactly ours (OIDC Discovery 4.3)."""
    doc = _get_json(http, issuer.rstrip("/") + "/.well-known/openid-configuration", what="OIDC discovery")
    if doc.get("issuer") != issuer:
        raise AuthenticationFailed(
            f"the discovery document of {issuer} names another issuer ({doc.get('issuer')!r})",
            hint="Configure the issuer URL exactly as the provider spells it (trailing slash included).",
        )
    jwks_uri = doc.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise AuthenticationFailed(f"the discovery document of {issuer} has no jwks_uri")

    endpoints = {
        name: value
        for name in ("token_endpoint", "authorization_endpoint", "device_authorization_endpoint")
        if isinstance(value := doc.get(name), str)
    }
    # Keys, and the refresh tokens and codes the CLI posts to these endpoints, never go over plain HTTP.
    for name, url in {"jwks_uri": jwks_uri, **endpoints}.items():
        try:
            check_url(url, what=name)
        except ConfigError as exc:
            raise AuthenticationFailed(f"the discovery document of {issuer}: {exc.message}") from exc
    return ProviderMetadata(issuer=issuer, jwks_uri=jwks_uri, **endpoints)


def fetch_keys(http: httpx.Client, jwks_uri: str) -> KeySet:
    """The provider's public keys; keys of a type joserfc does not know are skipped, not fatal."""
    doc = _get_json(http, jwks_uri, what="JWKS")
    usable = []
    for key in doc.get("keys") or []:
        if (
            not isinstance(key, dict)
            or key.get("use", "sig") != "sig"
            or "d" in key
            or key.get("kty") == "oct"
        ):
            continue  # never a private or symmetric key, whatever the document says
        usable.append(key)
    try:
        return KeySet.import_key_set({"keys": usable})
    except (ValueError, TypeError, KeyError) as exc:
        raise AuthenticationFailed(f"the JWKS at {jwks_uri} holds an invalid key") from exc


class JwksCache:
    """One issuer's keys: fetched on first use, kept ``max_age_seconds``, refetched for an unknown kid."""

    def __init__(
        self,
        issuer: str,
        *,
        http: httpx.Client,
        min_refresh_seconds: float = 30.0,
        max_age_seconds: float = 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self._http = http
        self._min_refresh = min_refresh_seconds
        self._max_age = max_age_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._metadata: ProviderMetadata | None = None
        #: How many times keys were fetched (discovery included); for tests and metrics.
        self.fetches = 0

    def metadata(self) -> ProviderMetadata:
        with self._lock:
            if self._metadata is None:
                self._metadata = discover(self._http, self.issuer)
            return self._metadata

    def keys_for(self, kid: str | None) -> KeySet:
        """Keys that include ``kid`` if the provider has it; refetch (rate limited) when it is unknown."""
        with self._lock:
            now = self._monotonic()
            stale = self._keys is None or now - self._fetched_at > self._max_age
            unknown = self._keys is not None and kid is not None and not _has_kid(self._keys, kid)
            if stale or (unknown and now - self._fetched_at >= self._min_refresh):
                self._refresh(now)
            assert self._keys is not None
            return self._keys

    def _refresh(self, now: float) -> None:
        try:
            if self._metadata is None:
                self._metadata = discover(self._http, self.issuer)
            keys = fetch_keys(self._http, self._metadata.jwks_uri)
        except AuthenticationFailed:
            if self._keys is None:
                raise
            self._fetched_at = now  # keep serving the known keys; try again after the interval
            return
        self.fetches += 1
        self._keys, self._fetched_at = keys, now


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(k.kid == kid for k in keys.keys)
