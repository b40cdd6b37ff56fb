"""Audit chain throughput on SQLite: appends per second with hash chaining (one event per transaction,
and batched), and `kubejit audit verify` over the whole log (1,000,000 events by default), against
the older ORM-and-parse verification on the same rows. Prints figures measured in this run; it never
fails on a time. Goals (issue 6): append >= 10,000 events/s, verify 1,000,000 events <= 10 s.

    .venv/bin/python bench/audit_chain.py [--events 1000000] [--single 2000] [--batch 1000] [--compare 100000]
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from kubejit.audit.chain import GENESIS, VerifyResult, link, verify_chain, verify_rows
from kubejit.audit.verdict import Verdict
from kubejit.grants.ports import AuditEvent
from kubejit.ids import GrantId
from kubejit.store import SqlAuditStore, create_store_engine, upgrade
from kubejit.store.audit_verify import iter_rows, verify_log
from kubejit.store.checkpoints import write_checkpoint

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def sample_event(n: int) -> AuditEvent:
    """A realistic token event: the details a grant's events carry, with origin."""
    return AuditEvent(
        action="token.minted",
        actor="oidc:alice@example.com",
        at=T0 + timedelta(milliseconds=n),
        grant_id=GrantId(f"g{n % 5000:012x}"),
        subject="oidc:alice@example.com",
        cluster="prod",
        details={
            "namespaces": ["payments"],
            "role": "view",
            "reason": "INC-1234 checkout latency",
            "ticket": "INC-1234",
            "approvers": ["bob", "carol"],
            "token_id": f"jti-{n}",
            "service_account_uid": "4f1c2b3a-0000-4000-8000-000000000000",
            "source_ip": "10.1.2.3",
            "user_agent": "kubejit/0.1 python-httpx/0.28",
        },
    )


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>10,.0f} events/s  ({count:,} events in {seconds:.2f}s)"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="events appended in batches, then verified"
    )
    parser.add_argument("--single", type=int, default=2_000, help="events appended one per transaction")
    parser.add_argument("--batch", type=int, default=1_000, help="events per transaction in the batched run")
    parser.add_argument(
        "--compare", type=int, default=100_000, help="rows verified by both paths for the ratio"
    )
    args = parser.parse_args()
    for name in ("events", "single", "batch", "compare"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def append_batched(
    store: SqlAuditStore, engine: Engine, key: Ed25519PrivateKey, args: argparse.Namespace
) -> float:
    """Seconds spent in the store (chaining, hashing, inserting, committing), events built beforehand."""
    spent = 0.0
    for first in range(0, args.events, args.batch):
        batch = [sample_event(n) for n in range(first, min(first + args.batch, args.events))]
        spent += timed(lambda batch=batch: store.record(batch))  # type: ignore[misc]
        if first % 100_000 == 0:  # as the broker's checkpoint worker would, now and then
            spent += timed(lambda: write_checkpoint(engine, key, now=T0))
    return spent + timed(lambda: write_checkpoint(engine, key, now=T0))


def append_single(store: SqlAuditStore, count: int) -> float:
    events = [sample_event(n) for n in range(count)]
    return timed(lambda: [store.record([event]) for event in events])


def warm_page_cache(path: Path) -> None:
    with path.open("rb") as db:
        while db.read(1 << 24):
            pass


def link_only(count: int) -> None:
    prev = GENESIS
    for n in range(count):
        prev = link(sample_event(n), seq=n + 1, event_id=f"{n:032x}", prev_hash=prev).hash


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_store_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(engine)
        store = SqlAuditStore(engine)
        key = Ed25519PrivateKey.generate()
        single = append_single(store, args.single)
        batched = append_batched(store, engine, key, args)
        verdicts: list[Verdict] = []
        keys = [key.public_key()]
        jobs = min(4, os.cpu_count() or 1)
        warm_page_cache(Path(tmp) / "bench.db")  # both verifications then read from memory alike
        cpu_before = time.process_time()
        verify_one = timed(lambda: verdicts.append(verify_log(engine, public_keys=keys, jobs=1)))
        verify_one_cpu = time.process_time() - cpu_before
        verify_all = timed(lambda: verdicts.append(verify_log(engine, public_keys=keys, jobs=jobs)))
        verdict = verdicts[0]
        assert verdict.ok and verdict == verdicts[1], verdicts
        compare = min(args.compare, verdict.checked)
        results: list[VerifyResult] = []
        fast = timed(lambda: results.append(verify_rows(itertools.islice(iter_rows(engine), compare))))
        slow = timed(lambda: results.append(verify_chain(itertools.islice(store.iter_events(), compare))))
        assert results[0] == results[1], results
        linking = timed(lambda: link_only(compare))
        engine.dispose()

    total = verdict.checked
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"audit chain on SQLite (WAL, synchronous=NORMAL); {os.cpu_count()} CPUs, load {load}")
    print(f"  append, 1 event/transaction          {rate(args.single, single)}")
    print(f"  append, {args.batch} events/transaction   {rate(args.events, batched)}")
    print(f"  link() alone (hash, no I/O)          {rate(compare, linking)}")
    print(
        f"  kubejit audit verify, {jobs} processes     {rate(total, verify_all)}  ({verdict.checkpoints} checkpoints)"
    )
    print(f"  kubejit audit verify, 1 process      {rate(total, verify_one)}  ({verify_one_cpu:.2f} CPU-s)")
    print(f"  first {compare:,} rows: raw-row verify  {rate(compare, fast)}")
    print(f"  first {compare:,} rows: ORM verify      {rate(compare, slow)}")
    print(f"  raw-row / ORM verify ratio           {slow / fast:.1f}x")
    print(f"  batched / single append ratio        {(args.events / batched) / (args.single / single):.1f}x")
    goal_append = "met" if args.events / batched >= 10_000 else "NOT met"
    goal_verify = "met" if verify_all * 1_000_000 / total <= 10 else "NOT met"
    print(f"  goals: append >= 10,000/s {goal_append}; verify 1M <= 10 s {goal_verify}")


if __name__ == "__main__":
    main()
