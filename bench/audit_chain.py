"""Audit chain throughput on SQLite: appends per second (one event per transaction, and batched),
and the time to verify 100k events. Prints figures measured in this run; it never fails on a time.

    .venv/bin/python bench/audit_chain.py [--events 100000] [--single 2000] [--batch 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from kubejit.audit.chain import GENESIS, link, verify_chain
from kubejit.grants.ports import AuditEvent
from kubejit.ids import GrantId
from kubejit.store import SqlGrantStore, create_store_engine, upgrade


def sample_event(n: int) -> AuditEvent:
    return AuditEvent(
        action="token.minted",
        actor="oidc:alice@example.com",
        at=datetime.now(UTC),
        grant_id=GrantId(f"g{n % 5000:012x}"),
        subject="oidc:alice@example.com",
        cluster="prod",
        details={"namespaces": ["payments"], "role": "view", "token_id": f"jti-{n}", "reason": "incident"},
    )


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>10,.0f} events/s  ({count:,} events in {seconds:.2f}s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=int, default=100_000, help="events appended in batches, then verified"
    )
    parser.add_argument("--single", type=int, default=2_000, help="events appended one per transaction")
    parser.add_argument("--batch", type=int, default=100, help="events per transaction in the batched run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        engine = create_store_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(engine)
        store = SqlGrantStore(engine)

        start = time.perf_counter()
        for n in range(args.single):
            store.record([sample_event(n)])
        single = time.perf_counter() - start

        start = time.perf_counter()
        for first in range(0, args.events, args.batch):
            store.record([sample_event(n) for n in range(first, min(first + args.batch, args.events))])
        batched = time.perf_counter() - start

        total = args.single + args.events
        start = time.perf_counter()
        result = store.verify_audit()
        verify_db = time.perf_counter() - start
        assert result.ok and result.checked == total, result

        events = list(store.iter_events())
        start = time.perf_counter()
        verify_chain(events)
        verify_memory = time.perf_counter() - start

        start = time.perf_counter()
        prev = GENESIS
        for n in range(args.events):
            prev = link(sample_event(n), seq=n + 1, event_id=f"{n:032x}", prev_hash=prev).hash
        linking = time.perf_counter() - start
        engine.dispose()

    print("audit chain on SQLite (WAL, synchronous=NORMAL), one process")
    print(f"  append, 1 event/transaction       {rate(args.single, single)}")
    print(f"  append, {args.batch} events/transaction   {rate(args.events, batched)}")
    print(f"  link() alone (hash, no I/O)       {rate(args.events, linking)}")
    print(f"  verify from the database          {rate(total, verify_db)}")
    print(f"  verify_chain() in memory          {rate(total, verify_memory)}")
    print(f"  batched / single append ratio     {(args.events / batched) / (args.single / single):.1f}x")


if __name__ == "__main__":
    main()
