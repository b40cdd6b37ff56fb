"""Build the OIDC verifiers the broker trusts from its settings (``identity.issuers``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from kubejit.clock import Clock
from kubejit.config import OidcIssuerSettings
from kubejit.identity.claims import ClaimMapping
from kubejit.identity.discovery import JwksCache
from kubejit.identity.oidc import OIDCIssuer, OIDCVerifier

#: An IdP that does not answer within this is treated as down (the cached keys keep working).
HTTP_TIMEOUT_SECONDS = 5.0


def issuer_from_settings(s: OidcIssuerSettings) -> OIDCIssuer:
    return OIDCIssuer(
        url=s.issuer_url,
        audience=s.audience,
        mapping=ClaimMapping(
            issuer_name=s.name,
            prefix=s.effective_prefix,
            username_claim=s.username_claim,
            groups_claim=s.groups_claim,
            groups_prefix=s.groups_prefix,
        ),
        required_claims=tuple(s.required_claims),
        leeway_seconds=s.leeway_seconds,
        authorized_parties=(s.login.client_id,) if s.login is not None else (),
    )


@dataclass(frozen=True)
class LoginOffer:
    """What the CLI needs to log a person in at one issuer (served by ``GET /v1/login-config``)."""

    name: str
    issuer_url: str
    client_id: str
    scopes: tuple[str, ...]
    redirect_host: str


def login_offers(settings: Sequence[OidcIssuerSettings]) -> list[LoginOffer]:
    return [
        LoginOffer(s.name, s.issuer_url, s.login.client_id, tuple(s.login.scopes), s.login.redirect_host)
        for s in settings
        if s.login is not None
    ]


@dataclass
class Issuers:
    verifiers: list[OIDCVerifier] = field(default_factory=list)
    clients: list[httpx.Client] = field(default_factory=list)

    def by_name(self, name: str) -> OIDCVerifier | None:
        return next((v for v in self.verifiers if v.issuer.name == name), None)

    def close(self) -> None:
        for client in self.clients:
            client.close()


def build_issuers(settings: Sequence[OidcIssuerSettings], *, clock: Clock) -> Issuers:
    """One verifier per issuer, each with its own HTTP client (its CA) and JWKS cache; nothing fetched yet."""
    built = Issuers()
    for s in settings:
        http = httpx.Client(
            timeout=HTTP_TIMEOUT_SECONDS,
            verify=str(s.ca_file) if s.ca_file else True,
            follow_redirects=False,
            headers={"user-agent": "kubejit-broker"},
        )
        keys = JwksCache(s.issuer_url, http=http, min_refresh_seconds=s.jwks_min_refresh_seconds)
        built.clients.append(http)
        built.verifiers.append(OIDCVerifier(issuer_from_settings(s), keys=keys, clock=clock))
    return built
