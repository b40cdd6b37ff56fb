"""SqlWebSessionStore on SQLite and PostgreSQL: what replicas share about browser sessions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kubejit.identity.principal import Principal
from kubejit.store import create_store_engine, upgrade
from kubejit.store.web_sessions import SqlWebSessionStore
from kubejit.web.sessions import SignInAttempt, WebSession, digest, new_secret
from tests.integration.test_store import BACKENDS, _fresh_postgres_database, postgres_admin_url  # noqa: F401

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
IDLE = timedelta(minutes=30)
ALICE = Principal(
    name="corp:alice", groups=frozenset({"corp:dev", "corp:sre"}), issuer="corp", person="alice@example.com"
)


@pytest.fixture(params=BACKENDS)
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlWebSessionStore]:
    if request.param == "sqlite":
        yield from _store(f"sqlite:///{tmp_path / 'kubejit.db'}")
        return
    with _fresh_postgres_database(request.getfixturevalue("postgres_admin_url")) as url:
        yield from _store(url)


def _store(url: str) -> Iterator[SqlWebSessionStore]:
    engine = create_store_engine(url)
    upgrade(engine)
    try:
        yield SqlWebSessionStore(engine)
    finally:
        engine.dispose()


def session(id_hash: str, *, at: datetime = NOW) -> WebSession:
    return WebSession(id_hash, ALICE, created_at=at, last_seen_at=at, expires_at=at + timedelta(hours=12))


def test_a_session_reads_back_with_its_principal_and_is_deleted(sessions: SqlWebSessionStore) -> None:
    key = digest(new_secret())
    sessions.add_session(session(key))
    found = sessions.get_session(key)
    assert found == session(key)
    sessions.touch_session(key, NOW + timedelta(minutes=5))
    touched = sessions.get_session(key)
    assert touched is not None and touched.last_seen_at == NOW + timedelta(minutes=5)
    sessions.delete_session(key)
    assert sessions.get_session(key) is None


def test_a_sign_in_attempt_is_taken_once(sessions: SqlWebSessionStore) -> None:
    attempt = SignInAttempt(digest("a"), "state", "nonce", "verifier", "/ui/grants", NOW)
    sessions.add_sign_in(attempt)
    assert sessions.take_sign_in(digest("a")) == attempt
    assert sessions.take_sign_in(digest("a")) is None


def test_ended_sessions_and_stale_attempts_are_swept(sessions: SqlWebSessionStore) -> None:
    sessions.add_session(session("idle", at=NOW - timedelta(hours=1)))
    sessions.add_session(session("fresh"))
    sessions.add_sign_in(SignInAttempt("old", "s", "n", "v", "/ui/", NOW - timedelta(minutes=11)))
    sessions.add_sign_in(SignInAttempt("new", "s", "n", "v", "/ui/", NOW))
    assert sessions.delete_ended(NOW, idle=IDLE) == 2
    assert sessions.get_session("idle") is None and sessions.get_session("fresh") is not None
    assert sessions.take_sign_in("old") is None and sessions.take_sign_in("new") is not None
