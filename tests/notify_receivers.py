"""Real receivers for notification tests and the bench: an SMTP server (aiosmtpd) and an HTTP one.

``SmtpReceiver`` speaks STARTTLS or implicit TLS with a certificate of the test CA, and can require
AUTH; it keeps every message it accepted (envelope recipients and the parsed message).
``HookReceiver`` takes the JSON webhook (checking its HMAC signature: 401 otherwise), Slack and Teams
bodies on their own paths, and can be stopped and started again on the same port (an outage).
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from kubejit.audit.delivery.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from kubejit.testing.certs import write_certificates
from kubejit.testing.processes import free_port

NOTIFY_HMAC_KEY = b"notify-hmac-key-0123456789abcdef"
# aiosmtpd 1.4 warns about its own deprecated login_data on every AUTH: noise, not a finding.
logging.getLogger("mail.log").setLevel(logging.ERROR)
SMTP_USER, SMTP_PASSWORD = "kubejit", "smtp-pass-5up3r-s3cret"


@dataclass(frozen=True)
class Mail:
    envelope_to: tuple[str, ...]
    message: EmailMessage
    at: float

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None
        return str(part.get_content())


@dataclass
class SmtpReceiver:
    workdir: Path
    #: "starttls", "tls" (implicit) or "none".
    security: str = "starttls"
    require_auth: bool = True
    port: int = field(default_factory=free_port)
    mails: list[Mail] = field(default_factory=list)
    auth_failures: int = 0
    #: Addresses refused with 550 (no such user), as a real server would.
    unknown: frozenset[str] = frozenset()
    _controller: Controller | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.certs = write_certificates(self.workdir, cluster_name="smtp-test")

    @property
    def ca_path(self) -> Path:
        return self.certs.ca_cert

    def start(self) -> SmtpReceiver:
        certs = self.certs
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(certs.serving_cert), str(certs.serving_key))
        receiver = self

        class Handler:
            async def handle_RCPT(
                self,
                server: SmtpServer,
                session: Session,
                envelope: Envelope,
                address: str,
                options: list[str],
            ) -> str:
                if address in receiver.unknown:
                    return "550 5.1.1 no such user"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: SmtpServer, session: Session, envelope: Envelope) -> str:
                raw = envelope.original_content or b""
                parsed = email.message_from_bytes(raw, policy=email.policy.default)
                assert isinstance(parsed, EmailMessage)
                with receiver._lock:
                    receiver.mails.append(Mail(tuple(envelope.rcpt_tos), parsed, time.monotonic()))
                return "250 OK"

        def authenticator(
            server: SmtpServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
        ) -> AuthResult:
            ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
                SMTP_USER.encode(),
                SMTP_PASSWORD.encode(),
            )
            if not ok:
                receiver.auth_failures += 1
            return AuthResult(success=ok)

        options: dict[str, Any] = {
            "authenticator": authenticator,
            "auth_required": self.require_auth,
            "auth_require_tls": self.security != "none",
        }
        if self.security == "starttls":
            options.update(tls_context=context, require_starttls=True)
        elif self.security == "tls":
            options.update(ssl_context=context)
        self._controller = Controller(
            Handler(), hostname="127.0.0.1", port=self.port, server_hostname="localhost", **options
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def received(self) -> list[Mail]:
        with self._lock:
            return list(self.mails)


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes
    at: float


class HookReceiver:
    """``/hook`` (signed JSON), ``/slack`` and ``/teams``; every accepted POST kept in order."""

    def __init__(self, port: int | None = None, *, key: bytes = NOTIFY_HMAC_KEY) -> None:
        self.port = port or free_port()
        self.key = key
        self.posts: list[Post] = []
        self.refused = 0
        #: Grant ids whose notices are answered 400 (a receiver refusing one message).
        self.poison: set[str] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> HookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.accept(self.path, dict(self.headers.items()), raw)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accept(self, path: str, headers: dict[str, str], raw: bytes) -> int:
        if path == "/hook" and not verify(
            self.key,
            timestamp=headers.get(TIMESTAMP_HEADER, ""),
            signature=headers.get(SIGNATURE_HEADER, ""),
            body=raw,
            now=time.time(),
        ):
            with self._lock:
                self.refused += 1
            return 401
        if path not in ("/hook", "/slack", "/teams"):
            return 404
        if any(grant_id.encode() in raw for grant_id in self.poison):
            return 400
        with self._lock:
            self.posts.append(Post(path, headers, json.loads(raw), raw, time.monotonic()))
        return 200

    def received(self, path: str) -> list[Post]:
        with self._lock:
            return [p for p in self.posts if p.path == path]
