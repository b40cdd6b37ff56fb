"""Per-person accounting in the store: written at most once a minute per person, listed with grants."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from kubejit.clock import FixedClock
from kubejit.grants.model import Grant, GrantState
from kubejit.identity.principal import Principal
from kubejit.ids import ClusterName, GrantId, NamespaceName, PrincipalName
from kubejit.policy.model import RoleRef
from kubejit.store import SqlGrantStore, create_store_engine, upgrade
from kubejit.store.users import SqlUserDirectory

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'kubejit.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def _grant(grant_id: str, requester: str, state: GrantState) -> Grant:
    return Grant(
        id=GrantId(grant_id),
        requester=PrincipalName(requester),
        cluster=ClusterName("prod"),
        namespaces=(NamespaceName("payments"),),
        role=RoleRef(name="view", kind="ClusterRole", ref_name="view"),
        duration=timedelta(hours=1),
        reason="r",
        ticket=None,
        state=state,
        rule="oncall",
        created_at=NOW,
        pending_until=NOW + timedelta(hours=1),
    )


def test_people_are_recorded_cheaply_and_listed_with_their_active_grants(engine: Engine) -> None:
    clock = FixedClock(NOW)
    people = SqlUserDirectory(engine, clock=clock)
    carol = Principal(name="dex:carol", groups=frozenset({"dex:developers"}), issuer="dex")
    assert people.seen(carol) is True
    clock.advance(timedelta(seconds=30))
    assert people.seen(carol) is False  # within the minute: no write
    assert people.seen(replace(carol, groups=frozenset({"dex:sre"}))) is True  # groups changed: written
    clock.advance(timedelta(seconds=61))
    assert people.seen(replace(carol, groups=frozenset({"dex:sre"}))) is True
    people.seen(Principal(name="alice", groups=frozenset(), issuer="dev"))

    store = SqlGrantStore(engine, clock=clock)
    store.add(_grant("g1", "dex:carol", GrantState.ACTIVE), [])
    store.add(_grant("g2", "dex:carol", GrantState.PENDING), [])
    store.add(_grant("g3", "alice", GrantState.EXPIRED), [])

    listed = {p.username: p for p in SqlUserDirectory(engine, clock=clock).list()}
    assert set(listed) == {"dex:carol", "alice"}
    carol_row = listed["dex:carol"]
    assert (carol_row.issuer, carol_row.groups, carol_row.active_grants) == ("dex", ("dex:sre",), ("g1",))
    assert carol_row.first_seen == NOW and carol_row.last_login == NOW + timedelta(seconds=91)
    assert listed["alice"].active_grants == ()


def test_a_second_broker_process_updates_the_same_row(engine: Engine) -> None:
    clock = FixedClock(NOW)
    first, second = SqlUserDirectory(engine, clock=clock), SqlUserDirectory(engine, clock=clock)
    who = Principal(name="dex:bob", groups=frozenset(), issuer="dex")
    first.seen(who)
    clock.advance(timedelta(minutes=5))
    assert second.seen(who) is True
    (row,) = first.list()
    assert (row.first_seen, row.last_login) == (NOW, NOW + timedelta(minutes=5))


def test_the_verified_email_of_the_last_login_is_recorded_for_notifications(engine: Engine) -> None:
    clock = FixedClock(NOW)
    people = SqlUserDirectory(engine, clock=clock)
    dana = Principal(name="dex:dana", groups=frozenset(), issuer="dex", person="dana@corp.example")
    assert people.seen(dana) is True and people.email("dex:dana") == "dana@corp.example"
    clock.advance(timedelta(seconds=5))
    assert people.seen(replace(dana, person="dana.k@corp.example")) is True  # changed: written at once
    assert people.email("dex:dana") == "dana.k@corp.example"
    people.seen(Principal(name="erin", groups=frozenset(), issuer="dev"))
    assert people.email("erin") is None and people.email("nobody") is None
    listed = {p.username: p.email for p in people.list()}
    assert listed == {"dex:dana": "dana.k@corp.example", "erin": None}
