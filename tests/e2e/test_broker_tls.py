"""The broker serves HTTPS itself: clients verify it with its CA, a rotated certificate is picked up
without a restart (open connections keep theirs), and a bad new pair is refused with the old kept."""

from __future__ import annotations

import http.client
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.broker_process import KUBEJIT
from tests.lone_broker import LoneBroker
from tests.polling import poll
from tests.serving_certs import BrokerCA


@pytest.fixture
def ca(tmp_path: Path) -> BrokerCA:
    return BrokerCA(tmp_path / "ca")


@pytest.fixture
def tls_broker(tmp_path: Path, ca: BrokerCA) -> Iterator[LoneBroker]:
    workdir = tmp_path / "broker"
    workdir.mkdir()
    ca.write_pair(workdir / "tls.crt", workdir / "tls.key", "first")
    broker = LoneBroker(
        workdir, broker={"tls": {"certFile": "tls.crt", "keyFile": "tls.key"}}, ca_path=ca.ca_path
    )
    broker.start()
    yield broker
    broker.stop()


def served_serial(broker: LoneBroker, host: str = "127.0.0.1") -> int:
    """The serial number of the certificate a new connection is given (a host name sends SNI)."""
    connection = http.client.HTTPSConnection(host, broker.port, context=_trusting(broker), timeout=10)
    try:
        connection.connect()
        return _peer_serial(connection)
    finally:
        connection.close()


def _trusting(broker: LoneBroker) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(broker.ca_path))


def _peer_serial(connection: http.client.HTTPSConnection) -> int:
    assert isinstance(connection.sock, ssl.SSLSocket)
    der = connection.sock.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _get(connection: http.client.HTTPSConnection, path: str) -> int:
    connection.request("GET", path)
    answer = connection.getresponse()
    answer.read()
    return answer.status


def test_clients_verify_the_broker_with_its_ca_and_plain_http_gets_nothing(tls_broker: LoneBroker) -> None:
    with tls_broker.client() as client:
        answer = client.get("/readyz")
        assert answer.status_code == 200, answer.text
        assert answer.url.scheme == "https"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_broker.url}/healthz", timeout=5)  # the system's CAs do not know this one
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{tls_broker.port}/healthz", timeout=5)
    connection = http.client.HTTPSConnection("127.0.0.1", tls_broker.port, context=_trusting(tls_broker))
    connection.connect()
    assert isinstance(connection.sock, ssl.SSLSocket)
    assert connection.sock.selected_alpn_protocol() in (None, "http/1.1")
    assert connection.sock.version() in ("TLSv1.2", "TLSv1.3")
    connection.close()


def test_a_rotated_certificate_serves_new_connections_and_open_ones_keep_working(
    tls_broker: LoneBroker, ca: BrokerCA
) -> None:
    workdir = tls_broker.workdir
    first = served_serial(tls_broker)
    kept = http.client.HTTPSConnection("127.0.0.1", tls_broker.port, context=_trusting(tls_broker))
    assert _get(kept, "/healthz") == 200
    assert _peer_serial(kept) == first

    second = ca.write_pair(workdir / "tls.crt", workdir / "tls.key", "second").serial_number
    assert poll(lambda: served_serial(tls_broker), lambda s: s == second, within=30, every=0.2) == second
    assert served_serial(tls_broker, host="localhost") == second  # with SNI as without
    assert _get(kept, "/healthz") == 200  # the connection opened before the rotation still serves
    assert _peer_serial(kept) == first
    kept.close()
    assert "TLS certificate reloaded" in tls_broker.log_text()


def test_a_bad_new_pair_is_refused_and_logged_and_the_old_one_keeps_serving(
    tls_broker: LoneBroker, ca: BrokerCA, tmp_path: Path
) -> None:
    workdir = tls_broker.workdir
    current = served_serial(tls_broker)
    # A new certificate with the key of another: they do not belong together.
    ca.write_pair(workdir / "tls.crt", tmp_path / "unused.key", "mismatched")
    ca.write_pair(tmp_path / "unused.crt", workdir / "tls.key", "other")
    assert poll(tls_broker.log_text, lambda log: "TLS certificate not reloaded" in log, within=30)
    assert served_serial(tls_broker) == current
    with tls_broker.client() as client:
        assert client.get("/healthz").status_code == 200
    # The files are fixed: the next good pair is taken.
    fixed = ca.write_pair(workdir / "tls.crt", workdir / "tls.key", "fixed").serial_number
    assert poll(lambda: served_serial(tls_broker), lambda s: s == fixed, within=30, every=0.2) == fixed


def test_a_bad_pair_at_start_stops_the_broker_naming_the_settings(tmp_path: Path, ca: BrokerCA) -> None:
    ca.write_pair(tmp_path / "tls.crt", tmp_path / "other.key", "a")
    ca.write_pair(tmp_path / "other.crt", tmp_path / "tls.key", "b")
    broker = LoneBroker(tmp_path, broker={"tls": {"certFile": "tls.crt", "keyFile": "tls.key"}})
    config = broker.write_config()
    done = subprocess.run(
        [KUBEJIT, "serve", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 78, done.stderr
    assert "do not load together" in done.stderr and "broker.tls.keyFile" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_plain_http_on_a_public_address_is_refused_unless_allowed(tmp_path: Path) -> None:
    broker = LoneBroker(tmp_path, broker={"host": "0.0.0.0"}, extra_config={"devIssuer": {"enabled": False}})
    config = broker.write_config()
    done = subprocess.run(
        [KUBEJIT, "serve", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 78, done.stderr
    assert "broker.allowPlainHttp: true" in done.stderr and "broker.tls" in done.stderr, done.stderr
