"""Audit delivery to real receivers on loopback: rsyslogd (TCP, TLS, UDP), an HTTP server for the
signed webhook and Splunk HEC, and a JSON-lines file, with the real store and delivery workers.

A receiver is stopped while events are recorded and started again: every event arrives, in order,
none twice after de-duplication by event id. UDP is best effort: what is sent while its receiver
is down is lost, by design of the transport.
"""

from __future__ import annotations

import functools
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from kubejit.audit.delivery.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from kubejit.cli.commands import audit as audit_cli
from kubejit.config import parse_settings
from kubejit.errors import ConfigError
from kubejit.grants.ports import AuditEvent
from kubejit.server.audit_delivery import AuditDelivery
from kubejit.store.audit_cursors import SqlCursorStore
from kubejit.store.audit_store import SqlAuditStore
from kubejit.store.engine import create_store_engine
from kubejit.store.grant_store import SqlGrantStore
from kubejit.store.migrate import upgrade
from kubejit.testing.processes import free_port
from kubejit.testing.rsyslog import RsyslogReceiver
from tests.integration.test_store import postgres_admin_url, store_url  # noqa: F401 (fixtures)
from tests.polling import eventually

pytestmark = pytest.mark.integration

HMAC_KEY = b"test-hmac-key-0123456789abcdef"
HEC_TOKEN = "11111111-2222-3333-4444-555555555555"


class HttpReceiver:
    """A webhook + HEC receiver that checks signatures and tokens, and records what it accepted.

    ``/hook``: HMAC-SHA256 over timestamp and body (refused with 401 otherwise). ``/services/collector/
    event``: ``Authorization: Splunk <token>`` (401 otherwise). Each accepted batch is kept in arrival
    order; ``busy`` counts requests in flight per path, to catch two senders at once.
    """

    def __init__(self, port: int | None = None, *, key: bytes = HMAC_KEY, token: str = HEC_TOKEN) -> None:
        self.port = port or free_port()
        self.key, self.token = key, token
        self.batches: dict[str, list[list[dict[str, Any]]]] = {"/hook": [], "/services/collector/event": []}
        self.refused: list[str] = []
        self.busy: dict[str, int] = {}
        self.max_busy: dict[str, int] = {}
        self.hold = 0.0  # seconds each request is held before answering (to widen race windows)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.accept(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                answer = b'{"text":"Success","code":0}' if status == 200 else b'{"text":"refused"}'
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accept(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            self.busy[path] = self.busy.get(path, 0) + 1
            self.max_busy[path] = max(self.max_busy.get(path, 0), self.busy[path])
        try:
            if self.hold:
                time.sleep(self.hold)
            if path == "/hook":
                ok = verify(
                    self.key,
                    timestamp=headers.get(TIMESTAMP_HEADER, ""),
                    signature=headers.get(SIGNATURE_HEADER, ""),
                    body=body,
                    now=time.time(),
                )
                events = json.loads(body)["events"] if ok else []
            elif path == "/services/collector/event":
                ok = headers.get("Authorization") == f"Splunk {self.token}"
                events = [json.loads(line)["event"] for line in body.splitlines()] if ok else []
            else:
                return 404
            with self._lock:
                if not ok:
                    self.refused.append(path)
                    return 401
                self.batches[path].append(events)
            return 200
        finally:
            with self._lock:
                self.busy[path] -= 1

    def seqs(self, path: str) -> list[int]:
        """Sequence numbers in arrival order, de-duplicated by event id (OCSF ``metadata.uid``)."""
        with self._lock:
            events = [e for batch in self.batches[path] for e in batch]
        return dedup_seqs((e["metadata"]["uid"], e["metadata"]["sequence"]) for e in events)


def dedup_seqs(pairs: Any) -> list[int]:
    seen: set[str] = set()
    ordered = []
    for event_id, seq in pairs:
        if event_id not in seen:
            seen.add(event_id)
            ordered.append(int(seq))
    return ordered


def syslog_seqs(lines: list[str], *, app: str) -> list[int]:
    """Seqs of the messages of one sink (told apart by APP-NAME), de-duplicated by eventId."""
    pairs = []
    for line in lines:
        fields = line.split(" ", 7)
        if len(fields) == 8 and fields[3] == app:
            body = json.loads(fields[7].split("] ", 1)[1])
            pairs.append((body["metadata"]["uid"], body["metadata"]["sequence"]))
    return dedup_seqs(pairs)


def file_seqs(path: Path) -> list[int]:
    lines = path.read_text().splitlines() if path.exists() else []
    return dedup_seqs((e["metadata"]["uid"], e["metadata"]["sequence"]) for e in map(json.loads, lines))


def wait_for(condition: Callable[[], bool], *, what: str) -> None:
    eventually(condition, what=what, within=60, every=0.05)


def sinks_config(rsyslog: RsyslogReceiver, http: HttpReceiver, out: Path) -> list[dict[str, Any]]:
    return [
        {"name": "jsonl", "type": "file", "path": str(out / "audit.jsonl")},
        {"name": "syslog-tcp", "type": "syslog", "transport": "tcp", "host": "127.0.0.1",
         "port": rsyslog.tcp_port, "appName": "kj-tcp"},
        {"name": "syslog-tls", "type": "syslog", "transport": "tls", "host": "127.0.0.1",
         "port": rsyslog.tls_port, "caFile": str(rsyslog.ca_path), "appName": "kj-tls"},
        {"name": "syslog-udp", "type": "syslog", "transport": "udp", "host": "127.0.0.1",
         "port": rsyslog.udp_port, "appName": "kj-udp"},
        {"name": "webhook", "type": "webhook", "url": f"{http.url}/hook",
         "hmacKey": {"fromFile": str(out / "hmac.key")}},
        {"name": "splunk", "type": "splunkHec", "url": http.url, "token": {"fromEnv": "TEST_HEC_TOKEN"}},
    ]  # fmt: skip


def delivery_settings(sinks: list[dict[str, Any]], tmp_path: Path, **audit: Any) -> Any:
    config = {
        "clusters": [{"name": "dev", "kubeconfig": "k.yaml", "audience": "https://dev"}],
        "policyFile": "policy.yaml",
        "audit": {
            "sinks": sinks,
            "deliveryIntervalSeconds": 0.05,
            "retry": {"initialSeconds": 0.1, "maxSeconds": 0.5},
            **audit,
        },
    }
    return parse_settings(yaml.safe_dump(config), source="config.yaml", base_dir=tmp_path).audit


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlGrantStore]:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'kubejit.db'}")
    upgrade(engine)
    yield SqlGrantStore(engine)
    engine.dispose()


@pytest.fixture
def any_store(store_url: str) -> Iterator[SqlGrantStore]:  # noqa: F811 (the imported fixture)
    """The store on SQLite and on PostgreSQL (``store_url`` of test_store: a fresh database each)."""
    engine = create_store_engine(store_url)
    upgrade(engine)
    yield SqlGrantStore(engine)
    engine.dispose()


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[RsyslogReceiver]:
    receiver = RsyslogReceiver(tmp_path / "rsyslog").start()
    yield receiver
    receiver.stop()


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


def _yields(seqs: Callable[[], list[int]], want: list[int]) -> bool:
    return seqs() == want


def record(store: SqlGrantStore, first: int, last: int) -> None:
    for n in range(first, last + 1):
        at = datetime.now(UTC)
        SqlAuditStore(store.engine).record(
            [AuditEvent(action="grant.requested", actor=f"user{n}", at=at, details={"n": n})]
        )


def test_every_sink_delivers_in_order_through_a_receiver_outage(
    tmp_path: Path,
    store: SqlGrantStore,
    rsyslog: RsyslogReceiver,
    http: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "hmac.key").write_bytes(HMAC_KEY + b"\n")
    monkeypatch.setenv("TEST_HEC_TOKEN", HEC_TOKEN)
    settings = delivery_settings(sinks_config(rsyslog, http, out), tmp_path)
    cursors = SqlCursorStore(store.engine)
    delivery = AuditDelivery.build(settings, cursors=cursors, clock=store.clock)
    delivery.start()
    try:
        received: dict[str, Callable[[], list[int]]] = {
            "jsonl": lambda: file_seqs(out / "audit.jsonl"),
            "syslog-tcp": lambda: syslog_seqs(rsyslog.messages(), app="kj-tcp"),
            "syslog-tls": lambda: syslog_seqs(rsyslog.messages(), app="kj-tls"),
            "webhook": lambda: http.seqs("/hook"),
            "splunk": lambda: http.seqs("/services/collector/event"),
        }

        def udp() -> list[int]:
            return syslog_seqs(rsyslog.messages(), app="kj-udp")

        record(store, 1, 5)
        for name, seqs in [*received.items(), ("syslog-udp", udp)]:
            wait_for(functools.partial(_yields, seqs, [1, 2, 3, 4, 5]), what=f"{name} before the outage")

        rsyslog.stop()
        http.stop()
        record(store, 6, 15)
        down = {"syslog-tcp", "syslog-tls", "webhook", "splunk"}
        wait_for(
            lambda: all(c.attempts >= 2 for c in cursors.cursors() if c.sink in down),
            what="failed attempts while the receivers are down",
        )
        stalled = {c.sink: c for c in cursors.cursors()}
        assert all(stalled[name].delivered_seq == 5 and stalled[name].last_error for name in down)
        assert stalled["jsonl"].delivered_seq == 15  # the file sink was never down

        rsyslog.start()
        http.start()
        record(store, 16, 18)
        everything = list(range(1, 19))
        for name, seqs in received.items():
            wait_for(functools.partial(_yields, seqs, everything), what=f"{name} to catch up")
        wait_for(lambda: udp()[-3:] == [16, 17, 18], what="UDP after the outage")
        assert udp()[:5] == [1, 2, 3, 4, 5] and all(6 <= s <= 15 for s in udp()[5:-3])
        caught_up = {c.sink: c for c in cursors.cursors()}
        assert all(
            c.delivered_seq == 18 and c.attempts == 0 and c.last_error is None for c in caught_up.values()
        )
        assert not http.refused
    finally:
        delivery.close()


def test_two_replicas_never_send_the_same_batch_at_once(
    tmp_path: Path, any_store: SqlGrantStore, http: HttpReceiver
) -> None:
    store = any_store
    (tmp_path / "hmac.key").write_bytes(HMAC_KEY)
    sink = {"name": "webhook", "type": "webhook", "url": f"{http.url}/hook", "batchSize": 3,
            "hmacKey": {"fromFile": str(tmp_path / "hmac.key")}}  # fmt: skip
    settings = delivery_settings([sink], tmp_path, deliveryIntervalSeconds=0.01)
    http.hold = 0.02  # each delivery takes a while, so the replicas' ticks overlap
    replicas = [
        AuditDelivery.build(settings, cursors=SqlCursorStore(store.engine), clock=store.clock)
        for _ in range(2)
    ]
    record(store, 1, 30)
    for replica in replicas:
        replica.start()
    try:
        wait_for(lambda: http.seqs("/hook") == list(range(1, 31)), what="all events")
        raw = [e["metadata"]["sequence"] for batch in http.batches["/hook"] for e in batch]
        assert raw == list(range(1, 31))  # not one event sent twice
        assert http.max_busy["/hook"] == 1
    finally:
        for replica in replicas:
            replica.close()


def test_a_replica_shutting_down_hands_its_sink_over_at_once(
    tmp_path: Path, any_store: SqlGrantStore, http: HttpReceiver
) -> None:
    """Its leases are given back at close, so another replica sends the next batch now rather than
    when the lease would have run out (a minute and more)."""
    store = any_store
    (tmp_path / "hmac.key").write_bytes(HMAC_KEY)
    sink = {"name": "webhook", "type": "webhook", "url": f"{http.url}/hook",
            "hmacKey": {"fromFile": str(tmp_path / "hmac.key")}}  # fmt: skip
    settings = delivery_settings([sink], tmp_path)
    leaving, staying = (
        AuditDelivery.build(settings, cursors=SqlCursorStore(store.engine), clock=store.clock)
        for _ in range(2)
    )
    now = store.clock.now()
    # A batch of the leaving replica's is in flight (its worker was started and claimed the sink).
    held = SqlCursorStore(store.engine).claim(
        "webhook", owner=leaving.owner, now=now, lease_until=now + timedelta(minutes=5)
    )
    assert held is not None
    assert (
        SqlCursorStore(store.engine).claim("webhook", owner=staying.owner, now=now, lease_until=now) is None
    )

    leaving.close()

    taken = SqlCursorStore(store.engine).claim(
        "webhook", owner=staying.owner, now=now, lease_until=now + timedelta(minutes=1)
    )
    assert taken is not None and taken.delivered_seq == 0  # nothing acknowledged is skipped
    staying.close()


def test_a_wrong_signing_key_is_refused_by_the_receiver_and_shown_on_the_cursor(
    tmp_path: Path, store: SqlGrantStore, http: HttpReceiver
) -> None:
    (tmp_path / "hmac.key").write_bytes(b"not the receiver's key")
    sink = {"name": "webhook", "type": "webhook", "url": f"{http.url}/hook",
            "hmacKey": {"fromFile": str(tmp_path / "hmac.key")}}  # fmt: skip
    delivery = AuditDelivery.build(
        delivery_settings([sink], tmp_path), cursors=SqlCursorStore(store.engine), clock=store.clock
    )
    record(store, 1, 2)
    delivery.start()
    try:
        cursors = SqlCursorStore(store.engine)
        wait_for(lambda: cursors.cursors()[0].attempts >= 2, what="refused attempts")
        cursor = cursors.cursors()[0]
        assert cursor.delivered_seq == 0 and "answered 401" in (cursor.last_error or "")
        assert http.refused and not http.batches["/hook"]
        assert "not the receiver" not in (cursor.last_error or "")
    finally:
        delivery.close()


def test_a_syslog_receiver_that_drops_the_connection_unread_gets_the_batch_again(
    tmp_path: Path, store: SqlGrantStore
) -> None:
    """TCP syslog has no acknowledgement: a reset (the receiver closed with our bytes unread) is a failure."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def drop_unread() -> None:
        conn, _ = listener.accept()
        wait_for(lambda: len(conn.recv(1, socket.MSG_PEEK)) == 1, what="bytes to arrive")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # unread data + linger 0: the kernel answers with RST

    sink = {"name": "tcp", "type": "syslog", "transport": "tcp", "host": "127.0.0.1", "port": port}
    delivery = AuditDelivery.build(
        delivery_settings([sink], tmp_path), cursors=SqlCursorStore(store.engine), clock=store.clock
    )
    record(store, 1, 1)
    dropper = threading.Thread(target=drop_unread)
    dropper.start()
    try:
        assert delivery.deliveries[0].tick() == 0
        dropper.join()
        cursor = SqlCursorStore(store.engine).cursors()[0]
        assert cursor.delivered_seq == 0 and cursor.attempts == 1
        assert "syslog over tcp to 127.0.0.1" in (cursor.last_error or "")
    finally:
        listener.close()
        delivery.close()


def test_audit_status_shows_each_sinks_lag_error_and_next_retry(tmp_path: Path, store: SqlGrantStore) -> None:
    (tmp_path / "hmac.key").write_bytes(HMAC_KEY)
    sinks: list[dict[str, Any]] = [
        {"name": "jsonl", "type": "file", "path": str(tmp_path / "audit.jsonl")},
        {"name": "siem", "type": "webhook", "url": f"http://127.0.0.1:{free_port()}/hook", "required": True,
         "hmacKey": {"fromFile": str(tmp_path / "hmac.key")}, "timeoutSeconds": 2},
    ]  # fmt: skip
    config = {
        "clusters": [{"name": "dev", "kubeconfig": "k.yaml", "audience": "https://dev"}],
        "policyFile": "policy.yaml",
        "store": {"url": str(store.engine.url)},
        "audit": {"sinks": sinks, "failClosed": True},
    }
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    delivery = AuditDelivery.build(
        delivery_settings(sinks, tmp_path), cursors=SqlCursorStore(store.engine), clock=store.clock
    )
    record(store, 1, 3)
    try:
        assert [d.tick() for d in delivery.deliveries] == [3, 0]  # nothing listens for the webhook
    finally:
        delivery.close()
    runner = CliRunner()

    answer = runner.invoke(audit_cli.app, ["status", "--config", str(config_path), "-o", "json"])
    assert answer.exit_code == 0, answer.output
    rows = {row["sink"]: row for row in json.loads(answer.stdout)["data"]}
    assert rows["jsonl"]["delivered_seq"] == 3 and rows["jsonl"]["lag_events"] == 0
    siem = rows["siem"]
    assert (siem["delivered_seq"], siem["lag_events"], siem["attempts"], siem["required"]) == (0, 3, 1, True)
    assert (
        siem["lag_seconds"] > 0 and siem["next_attempt_at"] and "POST http://127.0.0.1" in siem["last_error"]
    )

    table = runner.invoke(audit_cli.app, ["status", "--config", str(config_path)], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "siem (required)" in table.stdout and "ConnectError" in table.stdout

    config["audit"] = {}
    config_path.write_text(yaml.safe_dump(config))
    empty = runner.invoke(audit_cli.app, ["status", "--config", str(config_path)])
    assert "No audit sinks are configured" in empty.stdout

    missing = runner.invoke(audit_cli.app, ["status", "--config", str(tmp_path / "nope.yaml")])
    assert isinstance(missing.exception, ConfigError) and "config file not found" in missing.exception.message

    config["store"] = {"url": f"sqlite:///{tmp_path / 'typo' / 'kubejit.db'}"}
    config_path.write_text(yaml.safe_dump(config))
    no_store = runner.invoke(audit_cli.app, ["status", "--config", str(config_path)])
    assert (
        isinstance(no_store.exception, ConfigError) and "no kubejit database at" in no_store.exception.message
    )
    assert not (tmp_path / "typo").exists()  # an auditor's read creates nothing


@pytest.mark.parametrize(
    ("tls", "why"),
    [
        ({"serverName": "siem.example.com"}, "certificate verify failed"),  # not the name on the cert
        ({}, "certificate verify failed"),  # the receiver's CA is not in the system trust store
    ],
)
def test_tls_syslog_refuses_a_receiver_it_cannot_verify(
    tmp_path: Path, store: SqlGrantStore, rsyslog: RsyslogReceiver, tls: dict[str, str], why: str
) -> None:
    sink = {
        "name": "tls",
        "type": "syslog",
        "transport": "tls",
        "host": "127.0.0.1",
        "port": rsyslog.tls_port,
    }
    if tls:
        sink |= {"caFile": str(rsyslog.ca_path), **tls}
    delivery = AuditDelivery.build(
        delivery_settings([sink], tmp_path), cursors=SqlCursorStore(store.engine), clock=store.clock
    )
    record(store, 1, 1)
    try:
        assert delivery.deliveries[0].tick() == 0
    finally:
        delivery.close()
    cursor = SqlCursorStore(store.engine).cursors()[0]
    assert cursor.delivered_seq == 0 and why in (cursor.last_error or "").lower()
    assert syslog_seqs(rsyslog.messages(), app="kubejit") == []
