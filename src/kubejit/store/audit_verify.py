"""Verify the stored audit chain fast: raw rows straight from the driver into ``chain.verify_rows``.

The database spells each row's time as RFC 3339 itself, so Python neither builds ORM rows nor
parses JSON or dates: a million events verify in seconds. Reads go in keyset pages, each in its own
short read transaction, so a long verification never holds a snapshot open (nor PostgreSQL memory).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Connection, Engine

from kubejit.audit import checkpoint
from kubejit.audit.chain import GENESIS, RawRow, VerifyResult, verify_rows
from kubejit.audit.verdict import Verdict, judge
from kubejit.store.checkpoints import list_checkpoints, stored_hashes
from kubejit.store.engine import create_store_engine
from kubejit.store.transactions import read_transaction

#: The time column as RFC 3339 UTC with microseconds, per dialect (see ``audit_log._sqlite_time``).
#: Every stored character must reach the hash: a separator other than the space the broker writes
#: becomes "!", so an edited separator (SQLite reads "2026-03-01T12:00" as the same time, but SQL
#: filters compare the text) is an edit, not a no-op.
_AT_SQL = {
    "sqlite": "substr(at, 1, 10) || CASE substr(at, 11, 1) WHEN ' ' THEN 'T' ELSE '!' END"
    " || substr(at, 12) || 'Z'",
    "postgresql": """to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
}
_COLUMNS = "seq, event_id, {at}, action, actor, outcome, grant_id, subject, cluster, details, prev_hash, hash"


def _select(dialect: str) -> str:
    columns = _COLUMNS.format(at=_AT_SQL[dialect])
    mark = "?" if dialect == "sqlite" else "%s"
    return (
        f"SELECT {columns} FROM audit_events WHERE seq > {mark} AND seq <= {mark} ORDER BY seq LIMIT {mark}"
    )


#: The broker's default ``audit.checkpointIntervalSeconds``, when no config says otherwise.
DEFAULT_CHECKPOINT_INTERVAL = timedelta(seconds=60)
#: Larger than any seq (a signed 64-bit column).
_LAST = 2**63 - 1


def iter_rows(
    engine: Engine, *, after_seq: int = 0, upto: int = _LAST, batch: int = 20_000
) -> Iterator[RawRow]:
    """Every row in (after_seq, upto] in seq order, as plain tuples (``chain.RawRow``)."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    query = _select(engine.dialect.name)
    while True:
        with read_transaction(engine) as conn:
            rows = _fetch(conn, query, after_seq, upto, batch)
        yield from rows
        if len(rows) < batch:
            return
        after_seq = int(rows[-1][0])


def _fetch(conn: Connection, query: str, after_seq: int, upto: int, batch: int) -> list[RawRow]:
    # The driver's own cursor: its tuples go straight to verify_rows, which only unpacks them,
    # without SQLAlchemy building a Row per event (a third of the time of a plain execute()).
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(query, (after_seq, upto, batch))
        return cast(list[RawRow], cursor.fetchall())
    finally:
        cursor.close()


def verify_stored(engine: Engine, *, after_seq: int = 0, prev_hash: str = GENESIS) -> VerifyResult:
    """``verify_chain`` over the whole table (or from a known (seq, hash)), streaming."""
    return verify_rows(iter_rows(engine, after_seq=after_seq), after_seq=after_seq, prev_hash=prev_hash)


#: Below this many events one process is as fast as starting others.
PARALLEL_FROM = 200_000


def verify_parallel(engine: Engine, *, jobs: int) -> VerifyResult:
    """The same result as ``verify_stored``, with the table cut into ``jobs`` seq ranges.

    Range k starts from the hash stored at its lower bound, which range k-1 verifies as its last
    row; so every row and every link is checked exactly as in one pass, and the first bad seq of
    the first failing range is the first bad seq of the log. Hashing is CPU-bound and the GIL
    serialises threads, hence processes (each with its own connection).
    """
    end = _end_seq(engine)
    url = engine.url.render_as_string(hide_password=False)
    if jobs < 2 or end < PARALLEL_FROM or engine.url.database in (None, "", ":memory:"):
        return verify_stored(engine)
    bounds = [end * k // jobs for k in range(jobs + 1)]
    starts = stored_hashes(engine, bounds[1:-1])
    if any(starts[b] is None for b in bounds[1:-1]):  # a boundary row is missing: one pass names it
        return verify_stored(engine)
    prevs = [GENESIS, *(str(starts[b]) for b in bounds[1:-1])]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        parts = list(pool.map(_verify_range, [url] * jobs, bounds[:-1], bounds[1:], prevs))
    checked = 0
    for part in parts:
        checked += part.checked
        if not part.ok:
            return replace(part, checked=checked)
    # Rows appended while the ranges were verified: on from the last one, as one pass would go.
    rest = verify_rows(iter_rows(engine, after_seq=end), after_seq=end, prev_hash=parts[-1].head_hash)
    return replace(rest, checked=checked + rest.checked)


def _verify_range(url: str, after_seq: int, upto: int, prev_hash: str) -> VerifyResult:
    engine = create_store_engine(url)
    try:
        rows = iter_rows(engine, after_seq=after_seq, upto=upto)
        return verify_rows(rows, after_seq=after_seq, prev_hash=prev_hash)
    finally:
        engine.dispose()


def verify_log(
    engine: Engine,
    *,
    public_keys: Sequence[Ed25519PublicKey] | None,
    jobs: int = 1,
    now: datetime | None = None,
    checkpoint_interval: timedelta = DEFAULT_CHECKPOINT_INTERVAL,
    expect_head: checkpoint.ExpectedHead | None = None,
) -> Verdict:
    """The whole check behind `kubejit audit verify`: the chain, then every signed checkpoint.

    ``public_keys=None`` checks checkpoints against the log without their signatures (and says so).
    ``now`` turns on the warning for a newest checkpoint older than a few intervals; ``expect_head``
    is a head recorded outside the database, which the log must still reach (a cut to an older
    checkpoint agrees with every checkpoint left, so only such an anchor proves it).
    """
    chain = verify_parallel(engine, jobs=jobs)
    checkpoints = list_checkpoints(engine)
    keys = None if public_keys is None else {checkpoint.key_id(k): k for k in public_keys}
    anchors = [cp.seq for cp in checkpoints] + ([expect_head.seq] if expect_head else [])
    hashes = stored_hashes(engine, anchors)
    end_seq = _end_seq(engine)
    problems = [checkpoint.check(checkpoints, stored_hashes=hashes, end_seq=end_seq, keys=keys)]
    if expect_head is not None:
        stored = hashes.get(expect_head.seq)
        problems.append(checkpoint.check_expected_head(expect_head, end_seq=end_seq, stored_hash=stored))
    found = [p for p in problems if p is not None]
    problem = min(found, key=lambda p: p.seq) if found else None
    warnings = []
    if keys is None:
        warnings.append("checkpoint signatures not checked: no public key given (--public-key or --config)")
    elif not checkpoints:
        warnings.append("no signed checkpoints yet: a cut tail cannot be detected before the first one")
    if now is not None:
        warnings.append(checkpoint.stale_warning(checkpoints, now=now, interval=checkpoint_interval))
    warning = "; ".join(w for w in warnings if w)
    return judge(chain, problem, checkpoints=len(checkpoints), warning=warning)


def _end_seq(engine: Engine) -> int:
    with read_transaction(engine) as conn:
        return int(conn.execute(sa.text("SELECT coalesce(max(seq), 0) FROM audit_events")).scalar_one())
