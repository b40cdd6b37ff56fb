"""The keys that sign kubejit's cluster tokens (jwt mode), kept on disk like the checkpoint key.

One ES256 key signs; the keys it replaced stay published in the JWKS until the last token they
signed has expired (``overlap``), so rotating never ends a live kubectl session: the API server
still finds the old key for tokens already handed out, and fetches the JWKS again when it meets
the new key's ``kid``. Each key is one file, ``<created-unix-seconds>-<kid>.pem``, mode 0600; the
name orders them, so the newest file is the signing key on every replica reading the directory.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey

from kubejit.checks import read_private_file
from kubejit.clock import Clock
from kubejit.errors import ConfigError

SIGNING_ALGORITHM = "ES256"
#: Kept published this long past the last possible expiry, for clocks a little apart.
PUBLISH_LEEWAY_SECONDS = 60
_FILE = re.compile(r"^(?P<created>\d{1,12})-(?P<kid>[a-z0-9]{8,32})\.pem$")
_HINT = "Check jwtIssuer.keyDir and its permissions (the directory 0700, each key 0600)."


@dataclass(frozen=True)
class SigningKey:
    kid: str
    created: int  # unix seconds
    key: ECKey


class ClusterKeyRing:
    """The signing key and the published ones; rotates on its own after ``rotate_after_seconds``."""

    def __init__(
        self, directory: Path, *, clock: Clock, overlap_seconds: int, rotate_after_seconds: float
    ) -> None:
        self.directory = directory
        self._clock = clock
        self._overlap = overlap_seconds + PUBLISH_LEEWAY_SECONDS
        self._rotate_after = rotate_after_seconds
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = []
        self._seen_mtime: int | None = None
        with self._lock:
            self._reload()
            if not self._keys:
                self._add_key()

    # -- what the issuer and the JWKS route use ------------------------------------------------------
    def signing_key(self) -> SigningKey:
        """The newest key; a new one first when it is older than the rotation interval."""
        with self._lock:
            self._reload()
            if self._now() - self._keys[-1].created >= self._rotate_after:
                self._add_key()
            return self._keys[-1]

    def rotate(self) -> SigningKey:
        """A new signing key now (e.g. after a suspected leak of the old one: delete its file too)."""
        with self._lock:
            self._reload()
            return self._add_key()

    def published(self) -> list[SigningKey]:
        """The signing key and every older key whose tokens may still be alive."""
        with self._lock:
            self._reload()
            now = self._now()
            live: list[SigningKey] = []
            for older, newer in zip(self._keys, self._keys[1:], strict=False):
                # ``older`` signed until ``newer`` was made; its last token ends an overlap later.
                if now < newer.created + self._overlap:
                    live.append(older)
            live.append(self._keys[-1])
            return live

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set the clusters' API servers fetch (public halves only)."""
        keys = []
        for signing in self.published():
            public = signing.key.as_dict(private=False)
            keys.append({**public, "kid": signing.kid, "use": "sig", "alg": SIGNING_ALGORITHM})
        return {"keys": keys}

    def prune(self) -> list[str]:
        """Delete the files of keys no longer published; the kids removed."""
        with self._lock:
            self._reload()
            now = self._now()
            gone = [
                older
                for older, newer in zip(self._keys, self._keys[1:], strict=False)
                if now >= newer.created + self._overlap
            ]
            for key in gone:
                (self.directory / _file_name(key)).unlink(missing_ok=True)
            self._keys = [k for k in self._keys if k not in gone]
            self._seen_mtime = None
            return [k.kid for k in gone]

    # -- files -------------------------------------------------------------------------------------
    def _now(self) -> int:
        return int(self._clock.now().timestamp())

    def _reload(self) -> None:
        """Re-read the directory when it changed (another replica rotated, or an admin removed a key)."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            mtime = self.directory.stat().st_mtime_ns
        except OSError as exc:
            raise ConfigError(
                f"jwt issuer key directory {self.directory}: {exc.strerror or exc}", hint=_HINT
            ) from exc
        if mtime == self._seen_mtime and self._keys:
            return
        keys: list[SigningKey] = []
        for path in sorted(self.directory.iterdir()):
            match = _FILE.match(path.name)
            if match is None:
                continue
            keys.append(_load(path, kid=match["kid"], created=int(match["created"])))
        keys.sort(key=lambda k: (k.created, k.kid))
        self._keys, self._seen_mtime = keys, mtime

    def _add_key(self) -> SigningKey:
        kid = secrets.token_hex(8)
        created = max(self._now(), self._keys[-1].created + 1 if self._keys else 0)
        key = ECKey.generate_key("P-256", parameters={"kid": kid}, private=True)
        signing = SigningKey(kid=kid, created=created, key=key)
        path = self.directory / _file_name(signing)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(key.as_pem(private=True))
        except OSError as exc:
            raise ConfigError(f"jwt issuer key {path}: {exc.strerror or exc}", hint=_HINT) from exc
        self._keys.append(signing)
        self._seen_mtime = None
        return signing


def _file_name(key: SigningKey) -> str:
    return f"{key.created}-{key.kid}.pem"


def _load(path: Path, *, kid: str, created: int) -> SigningKey:
    try:
        pem = read_private_file(path, what="jwt issuer key")
    except OSError as exc:
        raise ConfigError(f"cannot read jwt issuer key {path}: {exc.strerror or exc}", hint=_HINT) from exc
    try:
        key = ECKey.import_key(pem, parameters={"kid": kid})
    except (ValueError, TypeError) as exc:  # the message names the file, never its content
        raise ConfigError(f"{path} is not a readable EC private key", hint=_HINT) from exc
    if not key.is_private or key.curve_name != "P-256":
        raise ConfigError(f"{path} is not a P-256 (ES256) private key", hint=_HINT)
    return SigningKey(kid=kid, created=created, key=key)
