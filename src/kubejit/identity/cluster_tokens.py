"""kubejit's own cluster credentials (jwt mode): a short JWT per session, naming the person.

The cluster's API server verifies it against kubejit's JWKS (``cluster_keys.py``) and the
AuthenticationConfiguration ``kubejit cluster-setup --mode jwt`` prints: ``aud`` is that one cluster's
audience, ``sub`` the person's principal (the API server puts the configured prefix before it), and
``groups`` only the grant's own group, which the grant's RoleBindings name. The IdP's groups are
never copied in: what the person may do in the cluster is exactly what the grant binds.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from joserfc import jwt

from kubejit.clock import Clock
from kubejit.identity.cluster_keys import SIGNING_ALGORITHM, ClusterKeyRing

#: Every grant's group starts with this; a token carries exactly one.
GRANT_GROUP_PREFIX = "kubejit:grant:"
#: The discovery document's path under the issuer URL (OIDC discovery).
DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks"


def grant_group(grant_id: str) -> str:
    """The Kubernetes group unique to one grant: its RoleBindings' subject, its tokens' only group."""
    return GRANT_GROUP_PREFIX + grant_id


@dataclass(frozen=True)
class ClusterToken:
    token: str
    expires_at: datetime
    jti: str


class ClusterTokenIssuer:
    """Signs cluster tokens with the key ring's signing key; the JWKS route publishes the ring."""

    def __init__(self, *, issuer_url: str, keys: ClusterKeyRing, lifetime_seconds: int, clock: Clock) -> None:
        self.issuer_url = issuer_url
        self.keys = keys
        self.lifetime_seconds = lifetime_seconds
        self._clock = clock

    def mint(self, *, subject: str, grant_id: str, audience: str, not_after: datetime | None) -> ClusterToken:
        """A token for one cluster; it never outlives ``not_after`` (the grant's end)."""
        now = int(self._clock.now().timestamp())
        exp = now + self.lifetime_seconds
        if not_after is not None:
            exp = min(exp, int(not_after.timestamp()))
        exp = max(exp, now + 1)
        jti = secrets.token_hex(16)
        claims = {
            "iss": self.issuer_url,
            "aud": audience,
            "sub": subject,
            "groups": [grant_group(grant_id)],
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": jti,
        }
        signing = self.keys.signing_key()
        token = jwt.encode({"alg": SIGNING_ALGORITHM, "kid": signing.kid, "typ": "JWT"}, claims, signing.key)
        return ClusterToken(token=token, expires_at=datetime.fromtimestamp(exp, UTC), jti=jti)

    def discovery(self) -> dict[str, object]:
        """The OIDC discovery document: what the API server reads to find the JWKS."""
        return {
            "issuer": self.issuer_url,
            "jwks_uri": self.issuer_url + JWKS_PATH,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [SIGNING_ALGORITHM],
            "claims_supported": ["iss", "aud", "sub", "groups", "iat", "nbf", "exp", "jti"],
        }
