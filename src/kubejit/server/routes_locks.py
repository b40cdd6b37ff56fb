"""Locks (admins only): refuse a user, a group or a grant everywhere, at once; see docs/offboarding.md."""

from __future__ import annotations

from fastapi import APIRouter

from kubejit.durations import parse_duration
from kubejit.errors import InvalidTransition, NotFound, PermissionDenied
from kubejit.grants.locks import LockKind
from kubejit.grants.offboarding import EndedGrants
from kubejit.server.deps import Svc, Who
from kubejit.server.problems import AUTHENTICATED, CLUSTER_WRITE, COMMON, declare
from kubejit.server.schemas import GrantOut, LockCreatedOut, LockIn, LockOut

router = APIRouter(prefix="/v1", tags=["locks"], responses=declare(*COMMON, *AUTHENTICATED))


@router.post(
    "/locks",
    response_model=LockCreatedOut,
    status_code=201,
    responses=declare(PermissionDenied, NotFound, *CLUSTER_WRITE),
)
def create_lock(body: LockIn, who: Who, svc: Svc) -> LockCreatedOut:
    """Lock a principal out and end the open grants it matches."""
    # LockIn holds exactly one target.
    kind, target = next((kind, value) for kind, value in _targets(body) if value is not None)
    duration = parse_duration(body.duration) if body.duration else None
    result = svc.grants.lockouts.lock(who, kind=kind, target=target, reason=body.reason, duration=duration)
    ended = ended_out(result.grants)
    return LockCreatedOut(
        lock=LockOut.of(result.lock),
        message=f"Locked {result.lock.subject} ({result.lock.id}); {summary(result.grants)}.",
        **ended,
    )


@router.get("/locks", response_model=list[LockOut], responses=declare(PermissionDenied))
def list_locks(who: Who, svc: Svc, include_removed: bool = False) -> list[LockOut]:
    """Locks in force, newest first; ``include_removed`` adds unlocked and expired ones."""
    return [LockOut.of(lock) for lock in svc.grants.lockouts.list_locks(who, include_removed=include_removed)]


@router.delete(
    "/locks/{lock_id}",
    response_model=LockOut,
    responses=declare(PermissionDenied, NotFound, InvalidTransition),
)
def remove_lock(lock_id: str, who: Who, svc: Svc) -> LockOut:
    return LockOut.of(svc.grants.lockouts.unlock(who, lock_id))


def _targets(body: LockIn) -> list[tuple[LockKind, str | None]]:
    return [(LockKind.USER, body.user), (LockKind.GROUP, body.group), (LockKind.GRANT, body.grant)]


def ended_out(tally: EndedGrants) -> dict[str, object]:
    return {
        "ended": [GrantOut.of(g) for g in tally.ended],
        "skipped": list(tally.skipped),
        "cleanup_deferred": list(tally.cleanup_deferred),
    }


def summary(tally: EndedGrants) -> str:
    """One line a person reads: what ended now, what had ended already, what the reconciler finishes."""
    if not tally.ended and not tally.skipped:
        return "no open grants: nothing to end"
    parts = [f"ended {len(tally.ended)} grant(s)"]
    if tally.skipped:
        parts.append(f"skipped {len(tally.skipped)} already ended")
    if tally.cleanup_deferred:
        parts.append(
            f"{len(tally.cleanup_deferred)} with cluster cleanup deferred to the reconciler "
            "(cluster unreachable; the grants are ended)"
        )
    return ", ".join(parts)
