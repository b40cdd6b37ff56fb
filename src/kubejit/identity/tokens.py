"""JWT verification with an algorithm allow-list and strict registered claims, given a key set.

Pure given its inputs (keys, now): fetching keys is the issuer adapter's job. joserfc does the
cryptography; this module only decides what is acceptable.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from kubejit.errors import AuthenticationFailed

#: Asymmetric only: never "none", never HMAC (a public key must not become a shared secret).
ALLOWED_ALGORITHMS = ("RS256", "ES256", "EdDSA", "Ed25519")
MAX_TOKEN_BYTES = 16 * 1024

# RFC 9864 renames "EdDSA" to the fully specified "Ed25519"; IdPs still sign with "EdDSA" (RFC 8037),
# which is as sound as before. joserfc warns on every use, so verify through a registry that does not.
_EDDSA = copy.copy(JWSRegistry.algorithms["EdDSA"])
_EDDSA.security_warning = None


class _Registry(JWSRegistry):
    algorithms = {**JWSRegistry.algorithms, "EdDSA": _EDDSA}


@dataclass(frozen=True)
class TokenRules:
    issuer: str
    audience: str
    leeway_seconds: int = 30
    algorithms: Collection[str] = ALLOWED_ALGORITHMS
    required_claims: tuple[str, ...] = ("sub", "exp", "iat")
    #: Clients besides ``audience`` a token with several audiences may be issued to (its ``azp``),
    #: e.g. the CLI's login client, for which the IdP minted a token for the broker too.
    authorized_parties: tuple[str, ...] = ()


def _segment(token: str, index: int) -> dict[str, Any]:
    if not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise AuthenticationFailed("the bearer token is not a JWT")
    part = token.split(".")[index]
    try:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise AuthenticationFailed("token rejected: malformed") from exc
    if not isinstance(value, dict):
        raise AuthenticationFailed("token rejected: malformed")
    return value


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, NOT verified: only to pick a key (``kid``) before verification."""
    return _segment(token, 0)


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload, NOT verified: only to route a token to the issuer that must verify it (``iss``)."""
    return _segment(token, 1)


def verify_jwt(token: str, *, keys: KeySet, rules: TokenRules, now: int) -> dict[str, Any]:
    """Return the claims of a valid token, or raise AuthenticationFailed saying what was wrong."""
    if not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise AuthenticationFailed("the bearer token is not a JWT")
    try:
        jws_registry = _Registry(algorithms=list(rules.algorithms))
        decoded = jwt.decode(token, keys, algorithms=list(rules.algorithms), registry=jws_registry)
    except JoseError as exc:
        raise AuthenticationFailed(f"token rejected: {exc.description or exc.error}") from exc
    except (ValueError, TypeError) as exc:  # malformed segments
        raise AuthenticationFailed("token rejected: malformed") from exc
    essentials: dict[str, Any] = {name: {"essential": True} for name in rules.required_claims}
    essentials["iss"] = {"essential": True, "value": rules.issuer}
    essentials["aud"] = {"essential": True, "value": rules.audience}
    registry = jwt.JWTClaimsRegistry(now=lambda: now, leeway=rules.leeway_seconds, **essentials)
    try:
        registry.validate(decoded.claims)
    except JoseError as exc:
        raise AuthenticationFailed(f"token rejected: {exc.description or exc.error}") from exc
    check_authorized_party(decoded.claims, rules)
    return dict(decoded.claims)


def check_authorized_party(claims: dict[str, Any], rules: TokenRules) -> None:
    """OIDC Core 3.1.3.7: a token for several audiences must say which client it was issued to
    (``azp``), and that must be a client of ours; otherwise any party in ``aud`` could replay it here.
    A token for one audience is left alone (an ``azp`` there may name a sibling client)."""
    aud = claims.get("aud")
    if not isinstance(aud, list) or len(aud) < 2:
        return
    azp = claims.get("azp")
    hint = "Ask an administrator: tokens with several audiences must carry azp naming this broker's client."
    if not isinstance(azp, str):
        raise AuthenticationFailed(
            "token rejected: it names several audiences but no authorized party (azp)", hint=hint
        )
    if azp not in (rules.audience, *rules.authorized_parties):
        raise AuthenticationFailed(
            f"token rejected: it was issued to the client {azp[:100]!r}, not to this broker's", hint=hint
        )
