"""Break-glass post-incident review through the grant service: flagged on activation, listed for who
may review, recorded once by an admin or a reviewer, never by the holder; bad comments change nothing."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta

import pytest

from kubejit.clock import FixedClock
from kubejit.errors import InvalidInput, InvalidTransition, NotFound, ReviewRefused
from kubejit.grants import reviews
from kubejit.grants.model import Grant, GrantState
from kubejit.grants.service import GrantService
from kubejit.identity.principal import Principal
from kubejit.ids import GrantId
from kubejit.policy.model import AccessRequest, Policy, RoleRef, Rule
from tests.fakes import FakeCluster, MemoryLockStore, MemoryStore

pytestmark = pytest.mark.unit

BOB = Principal("bob", frozenset({"sre"}), person="bob@corp.example")
#: Another login of bob's (same verified email): still the holder.
BOB_ELSEWHERE = Principal("okta:bob", frozenset({"security"}), person="bob@corp.example")
SECURITY = Principal("sam", frozenset({"security"}))
CAROL = Principal("carol", frozenset({"sre"}))
ADMIN = Principal("root", frozenset({"platform-admins"}))
ADMIN_ON_CALL = Principal("ada", frozenset({"sre", "platform-admins"}))

POLICY = Policy(
    roles={"edit": RoleRef("edit", "ClusterRole", "edit")},
    rules=(
        Rule(
            name="sre-break-glass",
            effect="allow",
            groups=frozenset({"sre"}),
            clusters=("*",),
            namespaces=("*",),
            roles=("edit",),
            require_reason=True,
            break_glass=True,
            reviewers=frozenset({"security"}),
        ),
        Rule(
            name="sre-edit",
            effect="allow",
            groups=frozenset({"sre"}),
            clusters=("*",),
            namespaces=("*",),
            roles=("edit",),
        ),
    ),
    admin_groups=frozenset({"platform-admins"}),
)
EMERGENCY = AccessRequest(
    cluster="dev", namespaces=("payments",), role="edit", reason="INC-7", break_glass=True
)


@dataclass
class World:
    service: GrantService
    store: MemoryStore
    cluster: FakeCluster
    clock: FixedClock

    def break_glass(self, who: Principal = BOB) -> Grant:
        return self.service.request(who, EMERGENCY)


@pytest.fixture
def world() -> World:
    store, cluster, clock = MemoryStore(), FakeCluster(), FixedClock()
    ids = (GrantId(f"g{i}") for i in itertools.count(1))
    service = GrantService(
        store=store,
        audit=store,
        clusters={"dev": cluster},
        policy=POLICY,
        clock=clock,
        id_factory=lambda: next(ids),
        locks=MemoryLockStore(),
    )
    return World(service, store, cluster, clock)


def events_of(store: MemoryStore, action: str) -> list[dict[str, object]]:
    return [e.details for e in store.events if e.action == action]


def test_a_break_glass_grant_is_flagged_when_it_activates_and_names_its_reviewers(world: World) -> None:
    grant = world.break_glass()
    assert grant.state is GrantState.ACTIVE and grant.needs_review and grant.review is None
    assert grant.reviewer_groups == {"security"}
    (activated,) = events_of(world.store, "grant.activated")
    assert activated["reviewers"] == ["security"] and activated["break_glass"] is True
    (used,) = events_of(world.store, "grant.break_glass")
    assert used["reviewers"] == ["security"] and used["review_required"] is True


def test_an_ordinary_grant_is_not_flagged_and_cannot_be_reviewed(world: World) -> None:
    plain = world.service.request(BOB, AccessRequest(cluster="dev", namespaces=("payments",), role="edit"))
    assert plain.state is GrantState.ACTIVE and not plain.needs_review and plain.reviewer_groups == set()
    assert "reviewers" not in events_of(world.store, "grant.activated")[0]
    with pytest.raises(InvalidTransition, match="not break-glass"):
        world.service.review(ADMIN, plain.id, comment="fine")


def test_reviews_lists_open_ones_for_reviewers_and_admins_never_the_holders_own(world: World) -> None:
    bobs, carols = world.break_glass(BOB), world.break_glass(CAROL)
    ids = [carols.id, bobs.id]  # newest first
    assert [g.id for g in world.service.reviews_for(SECURITY)] == ids
    assert [g.id for g in world.service.reviews_for(ADMIN)] == ids
    assert world.service.reviews_for(CAROL) == []  # sre: approvers of nothing here, not reviewers
    assert [g.id for g in world.service.reviews_for(BOB_ELSEWHERE)] == [carols.id]  # not bob's own
    assert world.service.reviews_for(Principal("nobody")) == []
    world.service.review(SECURITY, bobs.id, comment="rollback checked against the audit log")
    assert [g.id for g in world.service.reviews_for(SECURITY)] == [carols.id]


def test_a_reviewer_records_the_review_with_an_audit_event(world: World) -> None:
    grant = world.break_glass()
    world.clock.advance(timedelta(minutes=5))
    reviewed = world.service.review(SECURITY, grant.id, comment="  INC-7 rollback; audit matches  ")
    assert not reviewed.needs_review and reviewed.state is GrantState.ACTIVE
    assert reviewed.review is not None
    assert (reviewed.review.reviewer, reviewed.review.comment) == ("sam", "INC-7 rollback; audit matches")
    assert reviewed.review.at == world.clock.now()
    assert world.store.get(grant.id) == reviewed
    (event,) = [e for e in world.store.events if e.action == "grant.reviewed"]
    assert event.actor == "sam" and event.subject == "bob" and event.grant_id == grant.id
    assert event.details["reviewer"] == "sam"
    assert event.details["comment"] == "INC-7 rollback; audit matches"
    assert event.details["reviewers"] == ["security"]


def test_an_admin_may_review_even_outside_the_reviewer_groups(world: World) -> None:
    grant = world.break_glass()
    assert world.service.review(ADMIN, grant.id, comment="ok").review is not None


def test_a_reviewer_sees_the_grant_it_reviews(world: World) -> None:
    grant = world.break_glass()
    assert world.service.get_visible(SECURITY, grant.id) == grant


@pytest.mark.parametrize(
    ("who", "words"),
    [
        (BOB, "cannot review your own break-glass grant g1"),
        (BOB_ELSEWHERE, "(held as bob, the same person)"),
        (ADMIN_ON_CALL, "cannot review your own"),  # an admin holder, too
    ],
)
def test_the_holder_and_non_reviewers_are_refused_and_nothing_changes(
    world: World, who: Principal, words: str
) -> None:
    grant = world.break_glass(ADMIN_ON_CALL if who is ADMIN_ON_CALL else BOB)
    before = list(world.store.events)
    with pytest.raises(ReviewRefused) as refused:
        world.service.review(who, grant.id, comment="looks fine to me")
    assert words in refused.value.message
    assert refused.value.hint and "security" in refused.value.hint
    assert world.store.get(grant.id) == grant and world.store.events == before


def test_a_non_reviewer_is_told_the_grant_does_not_exist_as_by_get_visible(world: World) -> None:
    """Grant ids are no oracle of who holds access: a non-reviewer (not admin, not holder) cannot even
    see a break-glass grant, so the refusal is the 404 of ``get_visible``."""
    grant = world.break_glass()
    before = list(world.store.events)
    for who in (CAROL, Principal("mallory", frozenset({"developers"}))):
        with pytest.raises(NotFound, match=f"grant {grant.id} not found"):
            world.service.review(who, grant.id, comment="looks fine")
    assert world.store.get(grant.id) == grant and world.store.events == before
    with pytest.raises(NotFound):
        world.service.review(SECURITY, GrantId("gnope"), comment="x")


def test_the_rules_refuse_a_non_reviewer_who_can_see_the_grant(world: World) -> None:
    """``grants.reviews`` refuses by itself too (e.g. a page that shows the grant for another reason)."""
    grant = world.break_glass()
    with pytest.raises(ReviewRefused, match="carol is not a reviewer of break-glass grant g1") as refused:
        reviews.check_reviewer(grant, CAROL, is_admin=False)
    assert refused.value.hint == "Reviewers are admins and members of: security."
    assert not reviews.may_review(grant, CAROL, is_admin=False)
    assert reviews.may_review(grant, CAROL, is_admin=True)
    assert not reviews.may_review(grant, BOB, is_admin=True)
    with pytest.raises(NotFound):
        world.service.review(SECURITY, GrantId("gnope"), comment="x")


def test_a_second_review_is_refused_naming_the_first(world: World) -> None:
    """Documented behaviour (docs/api.md): one review per grant; the second gets 409, not a silent no-op."""
    grant = world.break_glass()
    first = world.service.review(SECURITY, grant.id, comment="first look")
    with pytest.raises(InvalidTransition, match="already reviewed by sam"):
        world.service.review(ADMIN, grant.id, comment="second look")
    assert world.store.get(grant.id) == first
    assert len(events_of(world.store, "grant.reviewed")) == 1


@pytest.mark.parametrize(
    ("comment", "words"),
    [
        ("", "needs a comment"),
        ("   ", "needs a comment"),
        ("x" * 1001, "at most 1000"),
        ("ok\nrm -rf", "U+000A"),
        ("ok\x1b[2J", "U+001B"),
        ("ok\u202eevil", "U+202E"),
    ],
)
def test_bad_comments_are_refused_before_anything_is_read(world: World, comment: str, words: str) -> None:
    grant = world.break_glass()
    with pytest.raises(InvalidInput, match=words.replace("+", r"\+")):
        world.service.review(SECURITY, grant.id, comment=comment)
    assert world.store.get(grant.id).needs_review


def test_a_comment_the_api_schema_allows_is_accepted_as_written(world: World) -> None:
    """Non-breaking spaces are no blank to the schema (PRINTABLE_NONBLANK): not to the rules either."""
    grant = world.break_glass()
    reviewed = world.service.review(SECURITY, grant.id, comment=" \u00a0 ")
    assert reviewed.review is not None and reviewed.review.comment == "\u00a0"


def test_a_break_glass_grant_that_never_activated_needs_no_review(world: World) -> None:
    from kubejit.errors import ClusterForbidden

    world.cluster.fail_with = ClusterForbidden("no RBAC")
    with pytest.raises(ClusterForbidden):
        world.break_glass()
    (failed,) = world.store.grants.values()
    assert failed.state is GrantState.FAILED and not failed.needs_review
    assert world.service.reviews_for(ADMIN) == []
    with pytest.raises(InvalidTransition, match="never became active"):
        world.service.review(ADMIN, failed.id, comment="nothing to see")


def test_the_flag_outlives_the_grant(world: World) -> None:
    """Revoked or expired, a break-glass use still needs its review."""
    grant = world.break_glass()
    world.service.revoke(BOB, grant.id, reason="done")
    assert [g.id for g in world.service.reviews_for(SECURITY)] == [grant.id]
    assert world.service.review(SECURITY, grant.id, comment="ok").state is GrantState.REVOKED
