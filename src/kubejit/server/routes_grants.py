"""Grant requests, decisions, revocation and token issue: each route calls one GrantService method."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kubejit.durations import parse_duration
from kubejit.errors import NotFound, PermissionDenied, RequestDenied, TooManyOpenGrants
from kubejit.grants.model import GrantState
from kubejit.grants.service import GrantScope
from kubejit.ids import GrantId
from kubejit.policy.model import AccessRequest
from kubejit.server.deps import Svc, Who
from kubejit.server.problems import AUTHENTICATED, CLUSTER_WRITE, COMMON, GRANT_DECISION, declare
from kubejit.server.routes_locks import ended_out, summary
from kubejit.server.schemas import (
    ApproveIn,
    DenyIn,
    ExtendIn,
    GrantOut,
    GrantRequestIn,
    LockOut,
    OffboardingOut,
    RevokeIn,
    RevokeUserIn,
    TokenOut,
)

router = APIRouter(prefix="/v1", tags=["grants"], responses=declare(*COMMON, *AUTHENTICATED))


@router.post(
    "/grants",
    response_model=GrantOut,
    status_code=201,
    responses=declare(PermissionDenied, RequestDenied, NotFound, TooManyOpenGrants, *CLUSTER_WRITE),
)
def request_grant(body: GrantRequestIn, who: Who, svc: Svc) -> GrantOut:
    access = AccessRequest(
        cluster=body.cluster,
        namespaces=tuple(body.namespaces),
        role=body.role,
        duration=parse_duration(body.duration) if body.duration else None,
        reason=body.reason,
        ticket=body.ticket or None,
        break_glass=body.break_glass,
    )
    return GrantOut.of(svc.grants.request(who, access), svc.public_url)


@router.get("/grants", response_model=list[GrantOut], responses=declare(PermissionDenied))
def list_grants(
    who: Who,
    svc: Svc,
    scope: GrantScope = "mine",
    state: Annotated[list[GrantState] | None, Query()] = None,
) -> list[GrantOut]:
    """scope: ``mine`` (default), ``pending-for-me`` (waiting for my approval), ``all`` (admins)."""
    return [GrantOut.of(g, svc.public_url) for g in svc.grants.list_for(who, scope=scope, states=state)]


@router.get("/grants/{grant_id}", response_model=GrantOut, responses=declare(NotFound))
def get_grant(grant_id: str, who: Who, svc: Svc) -> GrantOut:
    return GrantOut.of(svc.grants.get_visible(who, GrantId(grant_id)), svc.public_url)


@router.post("/grants/{grant_id}/approve", response_model=GrantOut, responses=declare(*GRANT_DECISION))
def approve(grant_id: str, body: ApproveIn, who: Who, svc: Svc) -> GrantOut:
    return GrantOut.of(svc.grants.approve(who, GrantId(grant_id), comment=body.comment), svc.public_url)


@router.post("/grants/{grant_id}/deny", response_model=GrantOut, responses=declare(*GRANT_DECISION))
def deny(grant_id: str, body: DenyIn, who: Who, svc: Svc) -> GrantOut:
    return GrantOut.of(svc.grants.deny(who, GrantId(grant_id), reason=body.reason), svc.public_url)


@router.post("/grants/{grant_id}/revoke", response_model=GrantOut, responses=declare(*GRANT_DECISION))
def revoke(grant_id: str, body: RevokeIn, who: Who, svc: Svc) -> GrantOut:
    return GrantOut.of(svc.grants.revoke(who, GrantId(grant_id), reason=body.reason), svc.public_url)


@router.post("/grants/{grant_id}/extend", response_model=GrantOut, responses=declare(*GRANT_DECISION))
def extend(grant_id: str, body: ExtendIn, who: Who, svc: Svc) -> GrantOut:
    return GrantOut.of(
        svc.grants.extend(who, GrantId(grant_id), by=parse_duration(body.duration)), svc.public_url
    )


@router.post("/grants/{grant_id}/token", response_model=TokenOut, responses=declare(*GRANT_DECISION))
def token(grant_id: str, who: Who, svc: Svc) -> TokenOut:
    minted = svc.grants.issue_token(who, GrantId(grant_id))
    grant = svc.grants.get_visible(who, GrantId(grant_id))  # as it is now: revoked meanwhile is said so
    return TokenOut(
        grant_id=grant_id,
        token=minted.token,
        expiration_timestamp=minted.expires_at,
        token_id=minted.token_id,
        state=str(grant.state),
        expires_at=grant.expires_at,
    )


@router.post(
    "/revocations", response_model=OffboardingOut, responses=declare(PermissionDenied, *CLUSTER_WRITE)
)
def revoke_user(body: RevokeUserIn, who: Who, svc: Svc) -> OffboardingOut:
    """Offboarding: lock a user out (unless ``lock`` is false) and end every open grant (admins only).

    Idempotent: grants that ended meanwhile are skipped; a second call ends nothing and says so.
    """
    done = svc.grants.lockouts.revoke_user(who, body.user, reason=body.reason, lock=body.lock)
    if done.lock is None:
        locked = "not locked"
    else:
        locked = f"locked by {done.lock.id}" + ("" if done.lock_created else " (already)")
    return OffboardingOut(
        user=done.user,
        lock=LockOut.of(done.lock) if done.lock else None,
        lock_created=done.lock_created,
        message=f"{done.user}: {summary(done.grants)}; {locked}.",
        **ended_out(done.grants),
    )
