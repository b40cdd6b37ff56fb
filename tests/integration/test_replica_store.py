"""Several replicas on one database, each with its own engine (its own connections, as separate
processes have): they start and migrate together, their sweepers race for the same due grants,
their checkpointers sign at the same time. SQLite and PostgreSQL (``store_url`` of test_store)."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from kubejit.audit import checkpoint
from kubejit.audit.chain import verify_chain
from kubejit.audit.event import StoredEvent
from kubejit.clock import FixedClock
from kubejit.config import Settings
from kubejit.errors import Conflict
from kubejit.grants import lifecycle
from kubejit.grants.model import GrantState
from kubejit.grants.ports import AuditEvent
from kubejit.server.audit_records import record_start
from kubejit.store import SqlAuditStore, SqlGrantStore, create_store_engine, current_revision, head_revision
from kubejit.store.checkpoints import Checkpointer, list_checkpoints, stored_hashes
from kubejit.store.migrate import upgrade
from kubejit.store.tables import metadata
from tests.integration.test_store import NOW, event, make_grant, postgres_admin_url, store_url  # noqa: F401

pytestmark = pytest.mark.integration

REPLICAS = 3


def _together(count: int, work: Callable[[int], object]) -> list[BaseException]:
    """Run ``work(0..count-1)`` in threads released at the same instant; the errors they raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:  # reported by the test, in its own thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.fixture
def engines(store_url: str) -> Iterator[list[Engine]]:  # noqa: F811 (the imported fixture)
    made = [create_store_engine(store_url) for _ in range(REPLICAS)]
    yield made
    for engine in made:
        engine.dispose()


def test_replicas_starting_together_on_an_empty_database_migrate_it_once(engines: list[Engine]) -> None:
    """Each migration runs under the writer lock, so the later ones find the schema at head."""
    assert _together(REPLICAS, lambda i: upgrade(engines[i])) == []
    assert current_revision(engines[0]) == head_revision()
    with engines[0].connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_racing_sweepers_end_each_due_grant_once(engines: list[Engine]) -> None:
    upgrade(engines[0])
    clock = FixedClock(NOW)
    first = SqlGrantStore(engines[0], clock=clock)
    for n in range(20):
        first.add(
            make_grant(
                f"g{n}", state=GrantState.ACTIVE, activated_at=NOW, expires_at=NOW + timedelta(minutes=1)
            ),
            [event(grant_id=f"g{n}")],
        )
    later = NOW + timedelta(minutes=2)

    def sweep(index: int) -> None:
        store = SqlGrantStore(engines[index], clock=clock)
        for grant in store.due_for_expiry(later):
            ended = lifecycle.expire(grant, now=later)
            try:
                store.save(ended, [AuditEvent("grant.expired", "kubejit", later, grant_id=grant.id)])
            except Conflict:  # another replica ended it first: skipped, as GrantService does
                continue

    assert _together(REPLICAS, sweep) == []
    expired = Counter(
        e.grant_id for e in SqlAuditStore(engines[0]).iter_events() if e.action == "grant.expired"
    )
    assert expired == {f"g{n}": 1 for n in range(20)}
    assert all(g.state is GrantState.EXPIRED for g in first.list(limit=100))


def test_checkpoints_signed_by_racing_replicas_form_one_line_the_chain_agrees_with(
    engines: list[Engine],
) -> None:
    upgrade(engines[0])
    key = Ed25519PrivateKey.generate()  # one key, shared by the replicas (a Secret)
    clock = FixedClock(NOW)

    def write_and_sign(index: int) -> None:
        audit, signer = SqlAuditStore(engines[index]), Checkpointer(engines[index], key, clock=clock)
        for n in range(15):
            audit.record([event(f"r{index}.{n}")])
            signer.tick()

    assert _together(REPLICAS, write_and_sign) == []
    signed = list_checkpoints(engines[0])
    seqs = [c.seq for c in signed]
    assert seqs == sorted(set(seqs)) and len(seqs) > 1  # one line: never two at the same head
    events = list(SqlAuditStore(engines[0]).iter_events())
    assert verify_chain(events).ok
    problem = checkpoint.check(
        signed,
        stored_hashes=stored_hashes(engines[0], seqs),
        end_seq=events[-1].seq,
        keys={checkpoint.key_id(key.public_key()): key.public_key()},
    )
    assert problem is None
    # A checkpoint signs something new each time: never the previous checkpoint's own copy alone.
    copies = [e.seq for e in events if e.action == checkpoint.CHECKPOINT_ACTION]
    assert all(later - earlier > 1 for earlier, later in itertools.pairwise(copies))


def test_replicas_started_together_with_a_new_policy_record_one_change(
    engines: list[Engine], tmp_path: Path
) -> None:
    upgrade(engines[0])
    policy = tmp_path / "policy.yaml"
    policy.write_text("roles: {}\nrules: []\n")
    settings = Settings.model_validate(
        {
            "clusters": [{"name": "dev", "kubeconfig": str(tmp_path / "kc"), "audience": "a"}],
            "policyFile": str(policy),
            "dataDir": str(tmp_path),
        }
    )
    clock = FixedClock(NOW)
    all_read = threading.Barrier(REPLICAS)

    class Replica(SqlAuditStore):
        """A replica that, having read the log outside the writer lock, waits for the others to
        read too: the interleaving of replicas started together, made certain."""

        def search_events(self, **filters: Any) -> list[StoredEvent]:
            found = super().search_events(**filters)
            all_read.wait(timeout=30)
            return found

    assert _together(REPLICAS, lambda i: record_start(Replica(engines[i]), settings, clock=clock)) == []
    actions = Counter(e.action for e in SqlAuditStore(engines[0]).iter_events())
    assert actions == {"config.changed": 1, "policy.changed": 1, "broker.started": REPLICAS}
