"""People seen by the broker, for offboarding and review (admins only): Kubernetes has no user list."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from kubejit.errors import PermissionDenied
from kubejit.server.deps import Svc, Who
from kubejit.server.problems import AUTHENTICATED, COMMON, declare

router = APIRouter(prefix="/v1", tags=["users"], responses=declare(*COMMON, *AUTHENTICATED))


class UserOut(BaseModel):
    username: str
    issuer: str
    groups: list[str]
    first_seen: datetime
    last_login: datetime
    active_grants: list[str]


@router.get("/users", response_model=list[UserOut], responses=declare(PermissionDenied))
def users(who: Who, svc: Svc) -> list[UserOut]:
    """Everyone who authenticated, most recent first, with the grants each holds now."""
    if not svc.grants.is_admin(who):
        raise PermissionDenied(
            "only admins may list users", hint="Admins are the members of the policy's adminGroups."
        )
    if svc.users is None:
        return []
    return [UserOut.model_validate(p, from_attributes=True) for p in svc.users.list()]
