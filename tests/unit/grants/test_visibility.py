"""Who may read a grant and whose grants a listing shows: the service's rules, not the routes'."""

from __future__ import annotations

import itertools

import pytest

from kubejit.clock import FixedClock
from kubejit.errors import NotFound, PermissionDenied
from kubejit.grants.model import GrantState
from kubejit.grants.service import GrantService
from kubejit.ids import GrantId
from tests.fakes import FakeCluster, MemoryStore
from tests.unit.grants.test_service import ADMIN, ALICE, BOB, BOB_DEV, EDIT, POLICY, VIEW

pytestmark = pytest.mark.unit


@pytest.fixture
def service() -> GrantService:
    ids = (GrantId(f"g{i}") for i in itertools.count(1))
    store = MemoryStore()
    return GrantService(
        store=store,
        audit=store,
        clusters={"dev": FakeCluster()},
        policy=POLICY,
        clock=FixedClock(),
        id_factory=lambda: next(ids),
    )


def test_a_grant_is_seen_by_its_requester_an_admin_and_its_approvers_only(service: GrantService) -> None:
    pending = service.request(ALICE, EDIT)  # approver group: sre
    active = service.request(ALICE, VIEW)  # auto: no approver group
    for who in (ALICE, ADMIN, BOB):
        assert service.get_visible(who, pending.id).id == pending.id
    for who in (ALICE, ADMIN):
        assert service.get_visible(who, active.id).id == active.id
    with pytest.raises(NotFound) as hidden:
        service.get_visible(BOB, active.id)
    assert hidden.value.message == f"grant {active.id} not found"  # the same answer as an unknown id
    with pytest.raises(NotFound):
        service.get_visible(ALICE, GrantId("gmissing"))


def test_listings_by_scope_and_everyone_s_for_admins_only(service: GrantService) -> None:
    pending = service.request(ALICE, EDIT)
    active = service.request(ALICE, VIEW)
    bobs = service.request(BOB_DEV, VIEW)
    assert [g.id for g in service.list_for(ALICE)] == [active.id, pending.id]
    assert [g.id for g in service.list_for(ALICE, states=[GrantState.ACTIVE])] == [active.id]
    assert [g.id for g in service.list_for(BOB, scope="pending-for-me")] == [pending.id]
    assert {g.id for g in service.list_for(ADMIN, scope="all")} == {pending.id, active.id, bobs.id}
    with pytest.raises(PermissionDenied):
        service.list_for(ALICE, scope="all")
