"""A small OIDC issuer for tests: real HTTP on loopback serving discovery and JWKS, real keys.

It signs whatever claims a test asks for (people's ID tokens, CI job tokens shaped like GitHub's or
GitLab's), so tests can show the broker accepting good tokens and refusing hostile ones. It is not an
authorization server (no login, no device flow): Dex plays that role (``kubejit.testing.dex``).

    with LocalIssuer() as idp:
        token = idp.issue({"sub": "alice", "aud": "kubejit", "groups": ["developers"]})
        idp.rotate()            # new signing key published; the old one stays until remove_key()

Claims get ``iss``, ``iat``, ``nbf`` and ``exp`` (now + ``ttl``) unless the test passes its own.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from kubejit.testing.processes import LOOPBACK

SigningKey = RSAKey | ECKey | OKPKey
_ALG = {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}


class LocalIssuer:
    def __init__(self, *, path: str = "", kty: str = "RSA") -> None:
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler())
        self._server.daemon_threads = True
        #: The issuer URL, exactly as it appears in ``iss`` and discovery.
        self.url = f"http://{LOOPBACK}:{self._server.server_address[1]}{path}"
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = []
        self._serial = 0
        self.signing_key = self.add_key(kty)
        #: More fields for the discovery document (e.g. endpoints a test needs).
        self.discovery_extra: dict[str, Any] = {}
        #: How many times each path was fetched (e.g. to show the JWKS cache at work).
        self.requests: dict[str, int] = {}
        self._thread: threading.Thread | None = None

    # -- keys ---------------------------------------------------------------------------------

    def add_key(self, kty: str = "RSA") -> SigningKey:
        """Generate and publish a new key (not yet the signing key)."""
        with self._lock:
            self._serial += 1
            kid = f"test-{kty.lower()}-{self._serial}"
            key: SigningKey
            if kty == "RSA":
                key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"}, private=True)
            elif kty == "EC":
                key = ECKey.generate_key("P-256", parameters={"kid": kid, "use": "sig"}, private=True)
            elif kty == "OKP":
                key = OKPKey.generate_key("Ed25519", parameters={"kid": kid, "use": "sig"}, private=True)
            else:
                raise ValueError(f"unsupported key type {kty}")
            self._keys.append(key)
            return key

    def rotate(self, kty: str = "RSA") -> SigningKey:
        """Publish a new key and sign with it from now on (old keys stay published)."""
        self.signing_key = self.add_key(kty)
        return self.signing_key

    def remove_key(self, key: SigningKey) -> None:
        with self._lock:
            self._keys = [k for k in self._keys if k.kid != key.kid]

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            return dict(KeySet(list(self._keys)).as_dict(private=False))

    # -- tokens -------------------------------------------------------------------------------

    def claims(self, claims: dict[str, Any], *, ttl: int = 300) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.url, "iat": now, "nbf": now, "exp": now + ttl, **claims}

    def issue(
        self,
        claims: dict[str, Any],
        *,
        ttl: int = 300,
        key: SigningKey | None = None,
        header: dict[str, Any] | None = None,
    ) -> str:
        """A token signed by ``key`` (default: the current signing key) with its ``kid`` in the header."""
        key = key or self.signing_key
        alg = _ALG[key.key_type]
        full_header = {"alg": alg, "kid": key.kid, "typ": "JWT", **(header or {})}
        with warnings.catch_warnings():  # joserfc flags "EdDSA" as renamed (RFC 9864)
            warnings.simplefilter("ignore", SecurityWarning)
            return jwt.encode(full_header, self.claims(claims, ttl=ttl), key, algorithms=[full_header["alg"]])

    # -- HTTP ---------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                prefix = issuer.url.split(f":{issuer._server.server_address[1]}", 1)[1]
                issuer.requests[path] = issuer.requests.get(path, 0) + 1
                if path == prefix + "/.well-known/openid-configuration":
                    body: dict[str, Any] = {
                        "issuer": issuer.url,
                        "jwks_uri": issuer.url + "/keys",
                        "response_types_supported": ["id_token"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
                        **issuer.discovery_extra,
                    }
                elif path == prefix + "/keys":
                    body = issuer.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: pytest captures nothing useful from it

        return Handler

    def start(self) -> LocalIssuer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-oidc-issuer", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> LocalIssuer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
