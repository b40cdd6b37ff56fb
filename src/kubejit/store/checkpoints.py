"""Signed audit checkpoints in SQL: written with the writer lock, read back for verification.

Each checkpoint row is written together with a chained ``audit.checkpoint`` event that copies it,
so the sinks carry every signed checkpoint off the database too: an attacker who cuts the tail
*and* the checkpoint table is still contradicted by the copies already shipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from kubejit.audit.checkpoint import CHECKPOINT_ACTION, Checkpoint, sign
from kubejit.clock import Clock
from kubejit.grants.ports import AuditEvent
from kubejit.store import audit_log
from kubejit.store.tables import audit_checkpoints, audit_events
from kubejit.store.transactions import read_transaction, write_transaction


def write_checkpoint(engine: Engine, key: Ed25519PrivateKey, *, now: datetime) -> Checkpoint | None:
    """Sign the current head, unless nothing but the previous checkpoint was appended since."""
    with write_transaction(engine) as conn:
        seq, digest = audit_log.tail(conn)
        last = conn.execute(sa.select(sa.func.max(audit_checkpoints.c.seq))).scalar()
        # The newest event is the previous checkpoint's own copy: nothing new to sign.
        if seq == 0 or (last is not None and seq <= int(last) + 1):
            return None
        checkpoint = sign(key, seq=seq, digest=digest, at=now)
        conn.execute(
            sa.insert(audit_checkpoints),
            {
                "seq": checkpoint.seq,
                "hash": checkpoint.hash,
                "at": checkpoint.at,
                "key_id": checkpoint.key_id,
                "signature": checkpoint.signature,
            },
        )
        event = AuditEvent(
            action=CHECKPOINT_ACTION,
            actor="kubejit",
            at=now,
            details={
                "checkpoint_seq": checkpoint.seq,
                "hash": checkpoint.hash,
                "key_id": checkpoint.key_id,
                "signature": checkpoint.signature,
            },
        )
        audit_log.append(conn, [event])
    return checkpoint


class Checkpointer:
    """The broker's signer: one ``tick`` per interval, and one more at shutdown."""

    def __init__(self, engine: Engine, key: Ed25519PrivateKey, *, clock: Clock) -> None:
        self._engine, self._key, self._clock = engine, key, clock

    def tick(self) -> Checkpoint | None:
        return write_checkpoint(self._engine, self._key, now=self._clock.now())

    def final(self) -> None:
        self.tick()


def list_checkpoints(engine: Engine) -> list[Checkpoint]:
    c = audit_checkpoints.c
    query = sa.select(c.seq, c.hash, c.at, c.key_id, c.signature).order_by(c.seq)
    with read_transaction(engine) as conn:
        return [Checkpoint(int(r.seq), r.hash, r.at, r.key_id, r.signature) for r in conn.execute(query)]


def stored_hashes(engine: Engine, seqs: Sequence[int]) -> dict[int, str | None]:
    """The stored hash at each of ``seqs`` (None where the row is missing), in pages of 500."""
    found: dict[int, str | None] = dict.fromkeys(seqs)
    with read_transaction(engine) as conn:
        for start in range(0, len(seqs), 500):
            page = list(seqs[start : start + 500])
            query = sa.select(audit_events.c.seq, audit_events.c.hash).where(audit_events.c.seq.in_(page))
            for seq, digest in conn.execute(query):
                found[int(seq)] = str(digest)
    return found
