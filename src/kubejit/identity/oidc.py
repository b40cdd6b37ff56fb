"""Verify OIDC tokens from configured issuers and turn them into Principals.

Public API (also used by workload token exchange):

- ``OIDCIssuer``: one trusted issuer (URL, audience, claim mapping, required claims, leeway).
- ``OIDCVerifier(issuer, keys=JwksCache(...), clock=...)``: ``verify(token)`` returns the verified
  claims (signature by a key of that issuer, allowed algorithm, iss/aud/exp/nbf/iat, required claims);
  ``authenticate(token)`` maps them to a Principal.
- ``IssuerSet(verifiers, dev=...)``: the broker's authenticator; picks the verifier by the token's
  (unverified) ``iss`` and lets that verifier decide. ``verifier_for(token)`` exposes the choice.

A token is routed by ``iss`` only to choose keys: the chosen verifier still checks ``iss`` exactly,
so lying about it just picks keys that cannot verify the signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet

from kubejit.clock import Clock
from kubejit.errors import AuthenticationFailed
from kubejit.identity.claims import ClaimMapping, principal_from_claims
from kubejit.identity.principal import Principal
from kubejit.identity.tokens import (
    ALLOWED_ALGORITHMS,
    TokenRules,
    unverified_claims,
    unverified_header,
    verify_jwt,
)


@dataclass(frozen=True)
class OIDCIssuer:
    #: Exactly the ``iss`` of its tokens (and the discovery base URL).
    url: str
    #: The ``aud`` a token must carry to be accepted by the broker.
    audience: str
    mapping: ClaimMapping
    #: Claims that must be present besides sub/exp/iat (e.g. ``email``).
    required_claims: tuple[str, ...] = ()
    leeway_seconds: int = 30
    algorithms: tuple[str, ...] = ALLOWED_ALGORITHMS
    #: Clients whose tokens for several audiences (``azp``) are accepted besides ``audience``: the
    #: issuer's login client (``login.clientId``), which asks the IdP for the broker's audience too.
    authorized_parties: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.mapping.issuer_name

    def rules(self, audience: str | None = None) -> TokenRules:
        return TokenRules(
            issuer=self.url,
            audience=audience or self.audience,
            leeway_seconds=self.leeway_seconds,
            algorithms=self.algorithms,
            required_claims=tuple(dict.fromkeys(("sub", "exp", "iat", *self.required_claims))),
            authorized_parties=self.authorized_parties,
        )


class KeySource(Protocol):
    """Where a verifier gets an issuer's public keys (``discovery.JwksCache`` in production)."""

    def keys_for(self, kid: str | None) -> KeySet: ...


class OIDCVerifier:
    def __init__(self, issuer: OIDCIssuer, *, keys: KeySource, clock: Clock) -> None:
        self.issuer = issuer
        self._keys = keys
        self._clock = clock

    def verify(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        """The verified claims, or AuthenticationFailed; ``audience`` overrides the issuer's default."""
        header = unverified_header(token)
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationFailed("token rejected: malformed key id")
        if header.get("alg") not in self.issuer.algorithms:
            # Decided before any key lookup: "none" and HMAC never reach the cryptography.
            raise AuthenticationFailed(
                f"token rejected: algorithm {str(header.get('alg'))[:20]!r} is not allowed"
            )
        keys = self._keys.keys_for(kid)
        try:
            return verify_jwt(
                token, keys=keys, rules=self.issuer.rules(audience), now=int(self._clock.now().timestamp())
            )
        except AuthenticationFailed as exc:
            if isinstance(exc.__cause__, InvalidKeyIdError):
                raise AuthenticationFailed(
                    f"token rejected: signed with a key {self.issuer.name} does not publish"
                ) from exc
            raise

    def authenticate(self, token: str) -> Principal:
        return principal_from_claims(self.verify(token), self.issuer.mapping)


class Authenticator(Protocol):
    def authenticate(self, token: str) -> Principal: ...


@dataclass
class IssuerSet:
    """Every issuer the broker trusts; the dev issuer (if enabled) is one more, under its own URL."""

    verifiers: Sequence[OIDCVerifier] = ()
    dev: Authenticator | None = None
    dev_issuer_url: str | None = None
    _by_url: dict[str, OIDCVerifier] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_url = {v.issuer.url: v for v in self.verifiers}

    def verifier_for(self, token: str) -> OIDCVerifier:
        iss = unverified_claims(token).get("iss")
        found = self._by_url.get(iss) if isinstance(iss, str) else None
        if found is None:
            raise AuthenticationFailed(
                "token rejected: its issuer is not trusted by this broker",
                hint="Log in with `kubejit login` against an issuer the broker is configured for.",
            )
        return found

    def authenticate(self, token: str) -> Principal:
        if self.dev is not None and unverified_claims(token).get("iss") == self.dev_issuer_url:
            return self.dev.authenticate(token)
        return self.verifier_for(token).authenticate(token)
