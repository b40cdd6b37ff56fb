"""Break-glass post-incident reviews: list the open ones, record one. Each route is one service call."""

from __future__ import annotations

from fastapi import APIRouter

from kubejit.errors import Conflict, InvalidTransition, NotFound, PermissionDenied, ReviewRefused
from kubejit.ids import GrantId
from kubejit.server.deps import Svc, Who
from kubejit.server.problems import AUTHENTICATED, COMMON, declare
from kubejit.server.schemas import GrantOut, ReviewIn

router = APIRouter(prefix="/v1", tags=["reviews"], responses=declare(*COMMON, *AUTHENTICATED))


@router.get("/reviews", response_model=list[GrantOut])
def list_reviews(who: Who, svc: Svc) -> list[GrantOut]:
    """Break-glass grants still needing review that the caller may review, newest first (admins: all)."""
    return [GrantOut.of(g, svc.public_url) for g in svc.grants.reviews_for(who)]


@router.post(
    "/grants/{grant_id}/review",
    response_model=GrantOut,
    responses=declare(PermissionDenied, ReviewRefused, NotFound, Conflict, InvalidTransition),
)
def review(grant_id: str, body: ReviewIn, who: Who, svc: Svc) -> GrantOut:
    """Record the post-incident review of a break-glass grant (an admin or a reviewer, never its holder)."""
    return GrantOut.of(svc.grants.review(who, GrantId(grant_id), comment=body.comment), svc.public_url)
