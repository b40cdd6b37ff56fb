"""One plain-HTTP request over a socket, for a broker on this machine.

The CLI speaks plain http only to a broker on this machine (``check_broker_url``). For that,
``http.client`` would cost its e-mail header parser and ``ssl`` (OpenSSL's libraries) at import,
together more than half of kubectl's whole start, for every `kubejit whoami`. This is the small part
of HTTP/1.1 such a call needs: one request per connection (``Connection: close``), and an answer whose
body ends by its Content-Length, by chunked transfer coding, or with the connection. Anything else
is not an HTTP answer (``NotHttp``, an ``OSError`` like every other failure to get one). https and
any other host go through urllib (certificates, proxies). Standard library only.
"""

from __future__ import annotations

import socket

#: The most an answer may hold: its headers, and its body (a list of every grant is far below).
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024


class NotHttp(ConnectionError):
    """What came back is not an HTTP answer (or was cut off, or is too large)."""


def request(
    host: str,
    port: int,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes | None,
    *,
    timeout: float,
) -> tuple[int, str, dict[str, str], bytes]:
    """Status, reason phrase, headers (names in lower case) and body of the answer to one request."""
    head = [f"{method} {target} HTTP/1.1", f"host: {_host_header(host, port)}", "connection: close"]
    if body is not None:
        head.append(f"content-length: {len(body)}")
    head += [f"{name}: {value}" for name, value in headers.items()]
    for line in head:
        if "\r" in line or "\n" in line:  # as http.client: a value must not start a header of its own
            raise ValueError(f"invalid HTTP header or request line: {line.split(':')[0]!r}")
    # An ASCII host as bytes: a str one is IDNA-encoded first, which loads unicodedata (~5 ms).
    address = host.encode("ascii") if host.isascii() else host
    with socket.create_connection((address, port), timeout=timeout) as connection:  # type: ignore[arg-type]
        connection.sendall("\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + (body or b""))
        raw = _read_to_end(connection)
    return parse_answer(raw)


def _host_header(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _read_to_end(connection: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := connection.recv(64 * 1024):
        size += len(chunk)
        if size > MAX_HEAD_BYTES + MAX_BODY_BYTES:
            raise NotHttp(f"the answer is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_answer(raw: bytes) -> tuple[int, str, dict[str, str], bytes]:
    """A whole answer as read until the connection closed (pure, for the tests)."""
    head, blank, rest = raw.partition(b"\r\n\r\n")
    if not blank or len(head) > MAX_HEAD_BYTES:
        raise NotHttp("no HTTP answer" if not raw else "the answer's headers do not end")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, _, status_and_reason = status_line.partition(" ")
    code, _, reason = status_and_reason.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise NotHttp(f"not an HTTP answer: {status_line[:40]!r}")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise NotHttp(f"a malformed header line: {line[:40]!r}")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return int(code), reason, headers, _unchunked(rest)
    if "content-length" in headers:
        length = headers["content-length"]
        if not length.isdigit():
            raise NotHttp(f"a malformed content-length: {length[:20]!r}")
        if len(rest) < int(length):
            raise NotHttp("the answer ended before its content-length")
        rest = rest[: int(length)]
    return int(code), reason, headers, rest


def _unchunked(data: bytes) -> bytes:
    body = bytearray()
    at = 0
    while True:
        end = data.find(b"\r\n", at)
        size_field = data[at:end].split(b";")[0].strip() if end >= 0 else b""
        try:
            size = int(size_field, 16)
        except ValueError:
            raise NotHttp("a malformed chunk size") from None
        at = end + 2
        if size == 0:
            return bytes(body)
        if size < 0 or at + size + 2 > len(data) or data[at + size : at + size + 2] != b"\r\n":
            raise NotHttp("the answer ended inside a chunk")
        body += data[at : at + size]
        at += size + 2
