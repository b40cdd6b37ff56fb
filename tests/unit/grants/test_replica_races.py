"""Two broker replicas on one store and one cluster: what one does between another's two steps.

Each test interleaves a second GrantService (another replica, or a request on the same one) at the
exact point a race needs, through ``FakeCluster.during_ensure`` / ``during_list``: the reconciler's
two reads, and an activation's object creation before its save. Each one fails without its fix.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from kubejit.clock import FixedClock
from kubejit.grants.model import GrantState
from kubejit.grants.service import GrantService
from kubejit.identity.principal import Principal
from kubejit.ids import GrantId
from kubejit.policy.model import AccessRequest, Policy, RoleRef, Rule
from tests.fakes import FakeCluster, MemoryLockStore, MemoryStore

pytestmark = pytest.mark.unit

ALICE = Principal("alice", frozenset({"developers"}))
BOB = Principal("bob", frozenset({"sre"}))
POLICY = Policy(
    roles={"view": RoleRef("view", "ClusterRole", "view")},
    rules=(
        Rule(
            name="auto",
            effect="allow",
            groups=frozenset({"developers"}),
            clusters=("dev",),
            namespaces=("team-*",),
            roles=("view",),
            max_duration=timedelta(hours=2),
        ),
        Rule(
            name="approved",
            effect="allow",
            groups=frozenset({"developers"}),
            clusters=("dev",),
            namespaces=("payments",),
            roles=("view",),
            approvals_required=1,
            approver_groups=frozenset({"sre"}),
        ),
    ),
    admin_groups=frozenset({"platform-admins"}),
)
AUTO = AccessRequest(cluster="dev", namespaces=("team-a",), role="view", reason="debug")
NEEDS_APPROVAL = AccessRequest(cluster="dev", namespaces=("payments",), role="view", reason="fix")


class Replicas:
    """Two services sharing a store, a cluster, a clock and grant ids: replicas ``a`` and ``b``."""

    def __init__(self) -> None:
        self.store, self.cluster, self.clock = MemoryStore(), FakeCluster(), FixedClock()
        ids = (GrantId(f"g{i}") for i in itertools.count(1))
        locks = MemoryLockStore()
        self.a, self.b = (
            GrantService(
                store=self.store,
                audit=self.store,
                clusters={"dev": self.cluster},
                policy=POLICY,
                clock=self.clock,
                id_factory=lambda: next(ids),
                locks=locks,
            )
            for _ in range(2)
        )

    def events(self, action: str, grant_id: GrantId) -> int:
        return sum(1 for e in self.store.events if e.action == action and e.grant_id == grant_id)


@pytest.fixture
def replicas() -> Replicas:
    return Replicas()


def test_the_reconciler_never_deletes_the_objects_of_a_grant_activated_after_it_read_the_store(
    replicas: Replicas,
) -> None:
    """Its live grants are read before the cluster is listed; a grant made in between is not an orphan."""
    made = []
    replicas.cluster.during_list = lambda: made.append(replicas.b.request(ALICE, AUTO))

    assert replicas.a.reconcile() == []

    assert made[0].state is GrantState.ACTIVE
    assert made[0].id in replicas.cluster.objects
    assert replicas.events("reconciler.deleted_orphans", made[0].id) == 0


def test_the_reconciler_never_restores_the_objects_of_a_grant_revoked_after_it_read_the_store(
    replicas: Replicas,
) -> None:
    grant = replicas.a.request(ALICE, AUTO)
    replicas.cluster.during_list = lambda: replicas.b.revoke(ALICE, grant.id)

    assert replicas.a.reconcile() == []

    assert replicas.store.get(grant.id).state is GrantState.REVOKED
    assert grant.id not in replicas.cluster.objects
    assert replicas.events("reconciler.restored", grant.id) == 0


def test_a_grant_revoked_while_the_reconciler_restores_it_keeps_no_objects(replicas: Replicas) -> None:
    """Its cleanup ran before the restored objects existed; the restore removes them again."""
    grant = replicas.a.request(ALICE, AUTO)
    del replicas.cluster.objects[grant.id]  # lost, say deleted by hand: the reconciler restores
    replicas.cluster.during_ensure = lambda: replicas.b.revoke(ALICE, grant.id)

    replicas.a.reconcile()

    assert replicas.store.get(grant.id).state is GrantState.REVOKED
    assert grant.id not in replicas.cluster.objects
    assert replicas.events("reconciler.restored", grant.id) == 0


def test_a_grant_revoked_while_it_is_activated_keeps_no_objects(replicas: Replicas) -> None:
    grant = replicas.a.request(ALICE, NEEDS_APPROVAL)
    replicas.cluster.during_ensure = lambda: replicas.b.revoke(ALICE, grant.id)

    answer = replicas.a.approve(BOB, grant.id)

    assert answer.state is GrantState.REVOKED
    assert grant.id not in replicas.cluster.objects
    assert replicas.events("grant.activated", grant.id) == 0


def test_an_activation_the_reconciler_finished_first_is_the_requests_answer_activated_once(
    replicas: Replicas,
) -> None:
    """Replica b's reconciler takes the approved grant for an interrupted activation and finishes it
    while replica a is still creating its objects: a's request answers the active grant, not 409."""
    grant = replicas.a.request(ALICE, NEEDS_APPROVAL)
    replicas.cluster.during_ensure = replicas.b.reconcile

    answer = replicas.a.approve(BOB, grant.id)

    assert answer.state is GrantState.ACTIVE
    assert answer == replicas.store.get(grant.id)
    assert grant.id in replicas.cluster.objects
    assert replicas.events("grant.activated", grant.id) == 1


def test_a_due_grant_both_sweepers_see_ends_once(replicas: Replicas) -> None:
    grant = replicas.a.request(ALICE, AUTO)
    replicas.clock.advance(timedelta(hours=2))
    seen_by_b = replicas.store.due_for_expiry(replicas.clock.now())

    assert [g.id for g in replicas.a.expire_due()] == [grant.id]
    assert [replicas.b._expire(g) for g in seen_by_b] == [None]  # lost the race: skipped, not repeated

    assert replicas.events("grant.expired", grant.id) == 1
    assert replicas.events("grant.cleaned_up", grant.id) == 1
    assert grant.id not in replicas.cluster.objects
