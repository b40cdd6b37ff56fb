"""Admin pages: all grants, locks, people seen, audit search. The service decides who is an admin."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from kubejit.errors import InvalidInput, PermissionDenied
from kubejit.grants.model import GrantState
from kubejit.ids import GrantId
from kubejit.web.guard import Ctx, PageRoute, Seen, Viewer
from kubejit.web.render import page

router = APIRouter(prefix="/ui/admin", route_class=PageRoute, include_in_schema=False)

AUDIT_PAGE_SIZE = 100


def _admin(who: Viewer, what: str) -> None:
    if not who.is_admin:
        raise PermissionDenied(
            f"only admins may see {what}", hint="Admins are the members of the policy's adminGroups."
        )


@router.get("/grants", response_class=HTMLResponse)
def all_grants(request: Request, ctx: Ctx, who: Seen, state: str = "") -> Response:
    states = [GrantState(state)] if state in {s.value for s in GrantState} else None
    grants = ctx.grants.list_for(who.principal, scope="all", states=states)  # admins only: the service says
    return page(
        request,
        "admin_grants.html",
        title="All grants",
        viewer=who,
        grants=grants,
        now=ctx.grants.clock.now(),
        state=state,
        states=[s.value for s in GrantState],
    )


@router.get("/locks", response_class=HTMLResponse)
def locks(request: Request, ctx: Ctx, who: Seen) -> Response:
    found = ctx.grants.lockouts.list_locks(who.principal, include_removed=True)
    return page(
        request, "admin_locks.html", title="Locks", viewer=who, locks=found, now=ctx.grants.clock.now()
    )


@router.get("/users", response_class=HTMLResponse)
def users(request: Request, ctx: Ctx, who: Seen) -> Response:
    _admin(who, "the people seen")
    people = list(ctx.users.list()) if ctx.users is not None else []
    return page(request, "admin_users.html", title="People", viewer=who, people=people)


@router.get("/audit", response_class=HTMLResponse)
def audit(
    request: Request,
    ctx: Ctx,
    who: Seen,
    actor: str = "",
    grant: str = "",
    action: str = "",
    cluster: str = "",
    since: str = "",
) -> Response:
    _admin(who, "the audit log")
    try:
        start = datetime.fromisoformat(since) if since else None
    except ValueError:
        raise InvalidInput(f"since: {since[:40]!r} is not a date (YYYY-MM-DD or ISO 8601)") from None
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=UTC)  # a date without a zone means UTC, as the pages show times
    events = ctx.audit.search_events(
        actor=actor or None,
        grant_id=GrantId(grant) if grant else None,
        action=action or None,
        cluster=cluster or None,
        since=start,
        limit=AUDIT_PAGE_SIZE,
    )
    return page(
        request,
        "admin_audit.html",
        title="Audit log",
        viewer=who,
        events=events,
        query={"actor": actor, "grant": grant, "action": action, "cluster": cluster, "since": since},
        limit=AUDIT_PAGE_SIZE,
    )
