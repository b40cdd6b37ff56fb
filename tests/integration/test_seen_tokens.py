"""The spent job-token ledger on real SQLite: one use per (issuer, jti), kept until expiry, with its audit."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from kubejit.grants.ports import AuditEvent
from kubejit.store import audit_log
from kubejit.store.engine import create_store_engine
from kubejit.store.migrate import upgrade
from kubejit.store.seen_tokens import SqlSeenTokenIds, token_key
from kubejit.store.tables import seen_token_ids

pytestmark = pytest.mark.integration
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path: Path) -> SqlSeenTokenIds:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'kubejit.db'}")
    upgrade(engine)
    return SqlSeenTokenIds(engine)


def event(action: str) -> AuditEvent:
    return AuditEvent(action=action, actor="github:repo:a/b:ref:refs/heads/main", at=NOW)


def test_each_token_id_is_used_once_per_issuer_with_its_audit_event(ledger: SqlSeenTokenIds) -> None:
    later = NOW + timedelta(minutes=10)
    assert ledger.first_use(issuer="https://a", jti="1", keep_until=later, now=NOW, events=[event("first")])
    assert not ledger.first_use(
        issuer="https://a", jti="1", keep_until=later, now=NOW, events=[event("again")]
    )
    assert ledger.first_use(issuer="https://b", jti="1", keep_until=later, now=NOW)
    actions = [e.action for e in audit_log.iter_events(ledger.engine)]
    assert actions == ["first"]  # a replay writes nothing: the caller records the refusal


def test_only_hashes_are_kept_and_expired_ids_are_purged(ledger: SqlSeenTokenIds) -> None:
    ledger.first_use(issuer="https://a", jti="old", keep_until=NOW + timedelta(minutes=1), now=NOW)
    ledger.first_use(issuer="https://a", jti="new", keep_until=NOW + timedelta(hours=1), now=NOW)
    with ledger.engine.connect() as conn:
        keys = set(conn.execute(sa.select(seen_token_ids.c.key)).scalars())
    assert keys == {token_key("https://a", "old"), token_key("https://a", "new")}
    assert all(re.fullmatch("[0-9a-f]{64}", key) for key in keys)  # sha256 digests, never the ids
    assert ledger.purge(NOW + timedelta(minutes=2)) == 1
    # Once its row is purged the id could be used again, but by then the token itself has expired.
    assert ledger.first_use(issuer="https://a", jti="old", keep_until=NOW, now=NOW + timedelta(minutes=3))
    assert not ledger.first_use(issuer="https://a", jti="new", keep_until=NOW, now=NOW + timedelta(minutes=3))


def test_issuer_and_jti_cannot_be_shifted_into_each_other() -> None:
    assert token_key("https://a", "bc") != token_key("https://ab", "c")
