"""The embedded development issuer: the broker signs short-lived JWTs for users named in its config.

For the quick start and tests only; the broker refuses to enable it unless the config says
``devIssuer.enabled: true``. Tokens are ES256 JWTs verified by the same code as OIDC tokens.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from kubejit.checks import read_private_file
from kubejit.clock import Clock
from kubejit.errors import AuthenticationFailed, ConfigError, NotFound
from kubejit.identity.principal import Principal
from kubejit.identity.tokens import TokenRules, verify_jwt

ISSUER = "dev"


def load_or_create_key(path: Path) -> ECKey:
    """Keep the signing key across restarts so issued tokens stay valid; 0600, never logged."""
    try:
        if path.exists():
            pem = read_private_file(path, what="dev issuer key")
            return ECKey.import_key(pem, parameters={"kid": "dev-1"})
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ECKey.generate_key("P-256", parameters={"kid": "dev-1"}, private=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key.as_pem(private=True))
        return key
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"dev issuer key {path}: {exc}", hint="Check the data directory's permissions."
        ) from exc


class DevIssuer:
    def __init__(
        self,
        *,
        users: Mapping[str, frozenset[str]],
        key: ECKey,
        issuer: str,
        clock: Clock,
        token_ttl_seconds: int = 12 * 3600,
    ) -> None:
        self.users = dict(users)
        self._key = key
        self._keys = KeySet([key])
        self.rules = TokenRules(issuer=issuer, audience="kubejit")
        self._clock = clock
        self._ttl = token_ttl_seconds

    def issue(self, username: str, *, nonce: str | None = None) -> str:
        """A signed ID token for a configured dev user; ``nonce`` is echoed for a web sign-in to check."""
        if username not in self.users:
            # Never list the configured users: whoever asks would learn whom to log in as.
            raise NotFound(
                f"no dev user '{username}'",
                hint="Dev users are listed under devIssuer.users in the broker config.",
            )
        now = int(self._clock.now().timestamp())
        claims: dict[str, Any] = {
            "iss": self.rules.issuer,
            "aud": self.rules.audience,
            "sub": username,
            "groups": sorted(self.users[username]),
            "iat": now,
            "nbf": now,
            "exp": now + self._ttl,
            "jti": secrets.token_hex(8),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode({"alg": "ES256", "kid": self._key.kid}, claims, self._key)

    def verify(self, token: str) -> dict[str, Any]:
        """The verified claims (signature, iss, aud, exp, nbf), or AuthenticationFailed."""
        return verify_jwt(token, keys=self._keys, rules=self.rules, now=int(self._clock.now().timestamp()))

    def authenticate(self, token: str) -> Principal:
        claims = self.verify(token)
        subject = claims.get("sub")
        if not isinstance(subject, str) or subject not in self.users:
            raise AuthenticationFailed("token subject is not a configured dev user")
        # Groups come from the config, not the token, so a config change applies at once.
        # Dev users carry no prefix: there is one issuer, and the quick start reads better as "alice".
        return Principal(name=subject, groups=self.users[subject], issuer=ISSUER)
