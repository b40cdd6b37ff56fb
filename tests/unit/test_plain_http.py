"""The CLI's plain-HTTP call to a broker on this machine: whatever comes back on the socket is either a
whole HTTP answer or an error, never a hang, a half body or an injected header."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from kubejit.local.plain_http import NotHttp, parse_answer, request

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", b"{}"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}trailing", b"{}"),
        (b"HTTP/1.0 200 OK\r\n\r\n{} to the end", b"{} to the end"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\n{\r\n1;x=y\r\n}\r\n0\r\n\r\n", b"{}"),
        (b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n", b""),
    ],
)
def test_the_body_ends_where_the_answer_says(raw: bytes, body: bytes) -> None:
    assert parse_answer(raw)[3] == body


def test_status_reason_and_headers_are_read_with_names_in_lower_case() -> None:
    raw = b"HTTP/1.1 409 Conflict\r\nContent-Type: application/problem+json\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
    assert parse_answer(raw)[:3] == (
        409,
        "Conflict",
        {"content-type": "application/problem+json", "x-a": "1, 2"},
    )


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"", "no HTTP answer"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "headers do not end"),
        (b"<html>\r\n\r\n", "not an HTTP answer"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "not an HTTP answer"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "malformed header"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", "content-length"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}", "ended before its content-length"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{}", "inside a chunk"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
    ],
)
def test_what_is_not_a_whole_http_answer_is_refused(raw: bytes, says: str) -> None:
    with pytest.raises(NotHttp, match=says):
        parse_answer(raw)


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes], list[bytes]]]:
    """A loopback server that records one request and answers with the bytes it is given."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []
    answers: list[bytes] = []

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(4096)
            received.append(data)
            connection.sendall(answers[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received, answers
    server.close()


def test_one_request_goes_out_with_host_length_and_close(
    listener: tuple[int, list[bytes], list[bytes]],
) -> None:
    port, received, answers = listener
    answers.append(b'HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{"ok":true}')
    answer = request("127.0.0.1", port, "POST", "/v1/x?a=1", {"authorization": "Bearer t"}, b"{}", timeout=10)
    assert answer == (200, "OK", {"content-length": "11"}, b'{"ok":true}')
    head = received[0].decode()
    assert head.startswith("POST /v1/x?a=1 HTTP/1.1\r\n")
    for line in (
        f"host: 127.0.0.1:{port}",
        "connection: close",
        "content-length: 2",
        "authorization: Bearer t",
    ):
        assert f"\r\n{line}\r\n" in head


def test_a_header_value_cannot_start_a_header_of_its_own() -> None:
    with pytest.raises(ValueError, match="authorization"):
        request("127.0.0.1", 9, "GET", "/", {"authorization": "Bearer t\r\nx-admin: yes"}, None, timeout=1)


def test_nothing_listening_is_an_os_error() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(OSError):
        request("127.0.0.1", port, "GET", "/", {}, None, timeout=5)
