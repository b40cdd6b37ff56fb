"""The broker's serving certificate, swapped in without a restart when its files change.

The server listens with one ``SSLContext`` whose SNI callback (called for every ClientHello, with
or without a server name) hands each new connection the context loaded last. Connections already
open keep the certificate they were made with; a new pair that fails to load (a key that does not
match, half-written PEM) is logged and refused, and the previous pair keeps serving.

HTTP/2 is not offered: uvicorn speaks HTTP/1.1 only (ALPN ``http/1.1``). See docs/deploy.md.
"""

from __future__ import annotations

import logging
import ssl
import tempfile
import threading
from pathlib import Path

from kubejit.errors import ConfigError
from kubejit.server.file_watch import ContentWatch, digest, read_all

log = logging.getLogger(__name__)

#: How often the certificate and key files are read to notice a rotation (two small files).
POLL_SECONDS = 2.0


def load_context(cert_pem: bytes, key_pem: bytes, *, source: str) -> ssl.SSLContext:
    """A server context for this pair (TLS 1.2 or later); ``ConfigError`` if they do not load together."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    # load_cert_chain reads files only: hand it private temporary copies of what was read once.
    with tempfile.TemporaryDirectory(prefix="kubejit-tls-") as tmp:
        cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert.write_bytes(cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(key_pem)
        try:
            context.load_cert_chain(cert, key)
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(
                f"{source}: the TLS certificate and key do not load together: {exc}",
                hint="Give broker.tls.certFile a PEM certificate chain and broker.tls.keyFile its own "
                "unencrypted PEM private key.",
            ) from exc
    return context


class ReloadingTls:
    """The listening context; ``reload_if_changed`` swaps in a new pair when the files change."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self._paths = (cert_file, key_file)
        self._source = f"{cert_file} + {key_file}"
        try:
            contents = read_all(self._paths)
        except OSError as exc:
            raise ConfigError(
                f"cannot read the broker's TLS files: {exc}",
                hint="Check broker.tls.certFile and broker.tls.keyFile.",
            ) from exc
        self._current = load_context(*contents, source=self._source)
        self.fingerprint = digest(contents)
        self._watch = ContentWatch(self._paths, current=self.fingerprint)
        self._lock = threading.Lock()
        #: What the server listens with: itself the first pair, and the door to the current one.
        self.context = self._current
        self.context.sni_callback = self._pick

    def _pick(self, connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        del server_name
        with self._lock:
            current = self._current
        if connection.context is not current:
            connection.context = current

    def reload_if_changed(self) -> bool:
        """Load the files when they changed; True when a new pair now serves new connections."""
        found = self._watch.changed()
        if found is None:
            return False
        fingerprint, contents = found
        try:
            context = load_context(*contents, source=self._source)
        except ConfigError as exc:
            log.error("TLS certificate not reloaded, the previous one keeps serving: %s", exc.message)
            return False
        with self._lock:
            self._current = context
            self.fingerprint = fingerprint
        log.info("TLS certificate reloaded from %s (sha256 %s)", self._source, fingerprint[:16])
        return True
