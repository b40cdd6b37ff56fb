"""Audit delivery throughput: events/s from the store to each kind of sink, measured side by side.

Records N events in a fresh SQLite store (hash-chained, as the broker does), then drains them with
the real SinkDelivery (cursor lease, batch read, send, cursor move) into, one after the other:

    file        JSON lines, fsync per batch
    syslog-tcp  rsyslogd on loopback (octet counting, one connection per batch, FIN as ack)
    syslog-tls  the same over TLS (gtls driver)
    webhook     a local HTTP server that checks each HMAC signature
    hec         the same server, Splunk HEC body and token check

and, for scale, the read alone (the cursor store's batch reads without sending). Figures are
events/s and the ratio to the read alone; the HTTP receiver runs in this process, so its signature
checks count against the webhook and HEC figures. Needs the Debian packages rsyslog and rsyslog-gnutls.
Usage, from the repository root: .venv/bin/python -m bench.audit_delivery [--events 20000] [--batch 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from kubejit.audit.delivery.ports import Sink
from kubejit.audit.delivery.sinks import build_sink
from kubejit.audit.delivery.worker import DeliveryOptions, SinkDelivery
from kubejit.audit.event import StoredEvent
from kubejit.grants.ports import AuditEvent
from kubejit.sink_settings import SinkSettings
from kubejit.store.audit_cursors import SqlCursorStore
from kubejit.store.audit_store import SqlAuditStore
from kubejit.store.engine import create_store_engine
from kubejit.store.grant_store import SqlGrantStore
from kubejit.store.migrate import upgrade
from kubejit.testing.rsyslog import RsyslogReceiver

# Run as a script (scripts/bench), Python puts bench/ first on sys.path: the receivers are in tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.integration.test_audit_delivery import (
    HEC_TOKEN,
    HMAC_KEY,
    HttpReceiver,
    delivery_settings,
)


class NullSink:
    name = "read-only"

    def deliver(self, events: Sequence[StoredEvent]) -> None:
        pass

    def close(self) -> None:
        pass


def drain(store: SqlGrantStore, sink: Sink, *, batch: int, total: int) -> float:
    cursors = SqlCursorStore(store.engine)
    cursors.ensure([sink.name])
    delivery = SinkDelivery(
        sink, cursors=cursors, clock=store.clock, owner="bench",
        options=DeliveryOptions(batch_size=batch, max_batches_per_tick=1_000_000),
    )  # fmt: skip
    started = time.perf_counter()
    delivered = delivery.tick()
    elapsed = time.perf_counter() - started
    if delivered != total:
        raise SystemExit(f"{sink.name}: delivered {delivered} of {total}: {cursors.cursors()}")
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        engine = create_store_engine(f"sqlite:///{work / 'kubejit.db'}")
        upgrade(engine)
        store = SqlGrantStore(engine)
        now = datetime.now(UTC)
        for start in range(0, args.events, 1000):
            SqlAuditStore(engine).record(
                [
                    AuditEvent(action="grant.activated", actor="kubejit", at=now, subject=f"user{n}",
                               cluster="dev", details={"namespaces": ["team-a"], "role": "edit", "reason": "bench"})
                    for n in range(start, min(start + 1000, args.events))
                ]
            )  # fmt: skip
        rsyslog = RsyslogReceiver(work / "rsyslog").start()
        http = HttpReceiver().start()
        (work / "hmac.key").write_bytes(HMAC_KEY)
        os.environ["BENCH_HEC_TOKEN"] = HEC_TOKEN
        raw_sinks = [
            {"name": "file", "type": "file", "path": str(work / "audit.jsonl")},
            {"name": "syslog-tcp", "type": "syslog", "transport": "tcp", "host": "127.0.0.1",
             "port": rsyslog.tcp_port},
            {"name": "syslog-tls", "type": "syslog", "transport": "tls", "host": "127.0.0.1",
             "port": rsyslog.tls_port, "caFile": str(rsyslog.ca_path)},
            {"name": "webhook", "type": "webhook", "url": f"{http.url}/hook",
             "hmacKey": {"fromFile": str(work / "hmac.key")}},
            {"name": "hec", "type": "splunkHec", "url": http.url, "token": {"fromEnv": "BENCH_HEC_TOKEN"}},
        ]  # fmt: skip
        for raw in raw_sinks:
            raw["batchSize"] = args.batch
        specs: list[SinkSettings] = list(delivery_settings(raw_sinks, work).sinks)
        try:
            baseline = drain(store, NullSink(), batch=args.batch, total=args.events)
            print(f"{args.events} events, batch {args.batch}, SQLite store")
            print(f"{'sink':<12} {'events/s':>10} {'vs read alone':>14}")
            print(f"{'read-only':<12} {baseline:>10.0f} {1.0:>13.2f}x")
            for spec in specs:
                sink = build_sink(spec)
                try:
                    rate = drain(store, sink, batch=args.batch, total=args.events)
                finally:
                    sink.close()
                print(f"{spec.name:<12} {rate:>10.0f} {rate / baseline:>13.2f}x")
        finally:
            http.stop()
            rsyslog.stop()
            engine.dispose()


if __name__ == "__main__":
    main()
