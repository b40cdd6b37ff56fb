"""Syslog delivery: RFC 5424 messages over UDP, TCP (RFC 6587 octet counting) or TLS (RFC 5425).

Syslog over TCP has no application-level acknowledgement, so each batch gets its own connection,
and the batch counts as acknowledged only when the receiver closes it cleanly after reading
everything: we half-close (TLS: close_notify) and wait for its FIN. A receiver that dies with our
bytes unread resets the connection instead, and the batch is sent again. UDP is best effort by
nature (RFC 5426): a datagram to a stopped receiver vanishes without an error.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence

from kubejit.audit.delivery.payload import event_json
from kubejit.audit.delivery.rfc5424 import format_message, octet_counted
from kubejit.audit.event import StoredEvent
from kubejit.errors import SinkUnavailable
from kubejit.sink_settings import FACILITIES, SyslogSinkSettings

#: The largest UDP payload; longer messages are truncated, as RFC 5426 allows.
MAX_DATAGRAM_BYTES = 65507


class SyslogSink:
    def __init__(self, settings: SyslogSinkSettings, *, hostname: str | None = None) -> None:
        self.name = settings.name
        self.settings = settings
        self.hostname = hostname or socket.gethostname()
        self._tls = _tls_context(settings) if settings.transport == "tls" else None

    def messages(self, events: Sequence[StoredEvent]) -> list[str]:
        facility = FACILITIES[self.settings.facility]
        return [
            format_message(
                e,
                event_json(e, self.settings.format),
                facility=facility,
                hostname=self.hostname,
                app_name=self.settings.app_name,
            )
            for e in events
        ]

    def deliver(self, events: Sequence[StoredEvent]) -> None:
        messages = self.messages(events)
        s = self.settings
        try:
            if s.transport == "udp":
                self._send_datagrams(messages)
            else:
                self._send_stream(b"".join(octet_counted(m) for m in messages))
        except (OSError, ssl.SSLError) as e:
            raise SinkUnavailable(
                f"audit sink {self.name}: syslog over {s.transport} to {s.host}:{s.port} failed: "
                f"{_describe(e)}",
                hint="Is the syslog receiver up and listening? The batch is sent again with backoff.",
            ) from e

    def _send_datagrams(self, messages: list[str]) -> None:
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(self.settings.timeout_seconds)
            for message in messages:
                sock.sendto(
                    message.encode("utf-8")[:MAX_DATAGRAM_BYTES], (self.settings.host, self.settings.port)
                )

    def _send_stream(self, data: bytes) -> None:
        s = self.settings
        with socket.create_connection((s.host, s.port), timeout=s.timeout_seconds) as raw:
            if self._tls is None:
                raw.sendall(data)
                raw.shutdown(socket.SHUT_WR)
                _read_until_eof(raw)
                return
            with self._tls.wrap_socket(raw, server_hostname=s.server_name or s.host) as conn:
                conn.sendall(data)
                try:
                    plain = conn.unwrap()  # our close_notify; returns once the receiver answers it
                except ssl.SSLEOFError:
                    return  # the receiver closed cleanly (FIN) after reading our close_notify
                _read_until_eof(plain)

    def close(self) -> None:
        pass


def _read_until_eof(sock: socket.socket) -> None:
    """Wait for the receiver's FIN (b""); a reset raises ConnectionResetError instead."""
    while sock.recv(4096):
        pass


def _tls_context(settings: SyslogSinkSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.cert_file and settings.key_file:
        context.load_cert_chain(str(settings.cert_file), str(settings.key_file))
    return context


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
