"""The pages people use: request access, my requests and grants, waiting for my approval, one request.

Each handler is thin, as the API's routes are: read the form, call one ``GrantService`` method, show
the result. Which choices a person is offered comes from policy (``user_may_request``, as ``whoami``);
whether an action is allowed is decided by the service when it is tried.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kubejit.durations import parse_duration
from kubejit.errors import ClusterError, KubejitError
from kubejit.grants import lifecycle
from kubejit.grants.model import Grant, GrantState
from kubejit.ids import GrantId
from kubejit.policy.evaluate import user_may_request
from kubejit.policy.glob import matches_any
from kubejit.policy.model import AccessRequest, Decision, Rule
from kubejit.web.context import RoleRules, WebContext
from kubejit.web.guard import Ctx, FormFields, PageRoute, Posted, Seen, Viewer, text
from kubejit.web.render import page
from kubejit.web.sessions import safe_return_to

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

#: How often an open request's page asks whether it changed (htmx polling, no reload).
LIVE_EVERY_SECONDS = 2
#: The list of my grants refreshes less often: its extend and revoke forms are replaced each time.
LIST_EVERY_SECONDS = 10
#: Requests listed on the approvals page unless all are asked for.
APPROVALS_SHOWN = 100
_SPLIT = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class Choices:
    """What policy lets this person ask for: offered in the form, decided again on submit."""

    clusters: list[str]
    roles: list[str]
    namespaces: list[str]
    rules: list[Rule]
    break_glass: bool


def choices_for(ctx: WebContext, who: Viewer) -> Choices:
    policy = ctx.grants.policy
    rules = user_may_request(policy, who.principal)
    known = sorted(ctx.grants.clusters)
    roles = sorted({r for rule in rules for r in (policy.roles if "*" in rule.roles else rule.roles)})
    return Choices(
        clusters=[c for c in known if any(matches_any(rule.clusters, c) for rule in rules)],
        roles=roles,
        namespaces=sorted({n for rule in rules for n in rule.namespaces}),
        rules=rules,
        break_glass=any(rule.break_glass for rule in rules),
    )


def access_request(fields: FormFields) -> AccessRequest:
    duration = text(fields, "duration", max_length=20)
    return AccessRequest(
        cluster=text(fields, "cluster", max_length=63),
        namespaces=tuple(n for n in _SPLIT.split(text(fields, "namespaces", max_length=2000)) if n),
        role=text(fields, "role", max_length=63),
        duration=parse_duration(duration) if duration else None,
        reason=text(fields, "reason", max_length=1000),
        ticket=text(fields, "ticket", max_length=200) or None,
        break_glass=fields.one("break_glass") == "on",
    )


def _query_fields(request: Request) -> FormFields:
    return FormFields(list(request.query_params.multi_items()))


@router.get("/", response_class=HTMLResponse)
def home() -> Response:
    return RedirectResponse("/ui/grants", status_code=303)


@router.get("/request", response_class=HTMLResponse)
def request_form(request: Request, ctx: Ctx, who: Seen) -> Response:
    return page(
        request, "request_new.html", title="Request access", viewer=who, choices=choices_for(ctx, who)
    )


@router.get("/request/check", response_class=HTMLResponse)
def request_check(request: Request, ctx: Ctx, who: Seen) -> Response:
    """The decision policy would make (``policy check``), shown before submit; nothing is stored."""
    decision: Decision | None = None
    problem: KubejitError | None = None
    fields = _query_fields(request)
    if fields.one("cluster") and fields.one("role"):
        try:
            decision = ctx.grants.check(who.principal, access_request(fields))
        except KubejitError as exc:
            problem = exc
    return page(request, "decision.html", decision=decision, problem=problem)


@router.post("/request")
def submit_request(ctx: Ctx, who: Seen, fields: Posted) -> Response:
    grant = ctx.grants.request(who.principal, access_request(fields))
    return RedirectResponse(f"/ui/requests/{grant.id}", status_code=303)


@router.get("/grants", response_class=HTMLResponse)
def my_grants(request: Request, ctx: Ctx, who: Seen) -> Response:
    grants = ctx.grants.list_for(who.principal, scope="mine")
    return page(
        request,
        "my_grants.html",
        title="My requests and grants",
        viewer=who,
        grants=grants,
        now=ctx.grants.clock.now(),
        live=LIST_EVERY_SECONDS if any(not g.state.ended for g in grants) else None,
    )


@router.get("/grants/live", response_class=HTMLResponse)
def my_grants_live(request: Request, ctx: Ctx, who: Seen) -> Response:
    grants = ctx.grants.list_for(who.principal, scope="mine")
    return page(
        request,
        "grant_list.html",
        viewer=who,
        grants=grants,
        now=ctx.grants.clock.now(),
        live=LIST_EVERY_SECONDS if any(not g.state.ended for g in grants) else None,
    )


@router.post("/grants/{grant_id}/revoke")
def revoke(grant_id: str, ctx: Ctx, who: Seen, fields: Posted) -> Response:
    ctx.grants.revoke(who.principal, GrantId(grant_id), reason=text(fields, "reason"))
    return RedirectResponse(safe_return_to(fields.one("next") or "/ui/grants"), status_code=303)


@router.post("/grants/{grant_id}/extend")
def extend(grant_id: str, ctx: Ctx, who: Seen, fields: Posted) -> Response:
    by = parse_duration(text(fields, "duration", max_length=20) or "15m")
    ctx.grants.extend(who.principal, GrantId(grant_id), by=by)
    return RedirectResponse(safe_return_to(fields.one("next") or "/ui/grants"), status_code=303)


@router.get("/approvals", response_class=HTMLResponse)
def approvals(request: Request, ctx: Ctx, who: Seen, all: bool = False) -> Response:
    """The newest ``APPROVALS_SHOWN`` by default (a page an approver can scan), every one with ``?all=1``."""
    waiting = ctx.grants.list_for(who.principal, scope="pending-for-me")
    return page(
        request,
        "approvals.html",
        title="Waiting for my approval",
        viewer=who,
        grants=waiting if all else waiting[:APPROVALS_SHOWN],
        total=len(waiting),
        now=ctx.grants.clock.now(),
    )


@router.get("/requests/{grant_id}", response_class=HTMLResponse)
def request_page(request: Request, ctx: Ctx, who: Seen) -> Response:
    grant_id = GrantId(request.path_params["grant_id"])
    grant = ctx.grants.get_visible(who.principal, grant_id)
    return page(
        request,
        "request_page.html",
        title=f"Request {grant.id}",
        viewer=who,
        **_request_facts(ctx, who, grant),
        others=_other_grants(ctx, who, grant),
        role_rules=_role_rules(ctx, grant),
    )


@router.get("/requests/{grant_id}/live", response_class=HTMLResponse)
def request_live(grant_id: str, request: Request, ctx: Ctx, who: Seen) -> Response:
    grant = ctx.grants.get_visible(who.principal, GrantId(grant_id))
    return page(request, "request_live.html", viewer=who, **_request_facts(ctx, who, grant))


@router.post("/requests/{grant_id}/approve")
def approve(grant_id: str, ctx: Ctx, who: Seen, fields: Posted) -> Response:
    ctx.grants.approve(who.principal, GrantId(grant_id), comment=text(fields, "comment"))
    return RedirectResponse(safe_return_to(fields.one("next") or f"/ui/requests/{grant_id}"), status_code=303)


@router.post("/requests/{grant_id}/deny")
def deny(grant_id: str, ctx: Ctx, who: Seen, fields: Posted) -> Response:
    ctx.grants.deny(who.principal, GrantId(grant_id), reason=text(fields, "comment"))
    return RedirectResponse(safe_return_to(fields.one("next") or f"/ui/requests/{grant_id}"), status_code=303)


def _request_facts(ctx: WebContext, who: Viewer, grant: Grant) -> dict[str, Any]:
    history = list(reversed(ctx.audit.search_events(grant_id=grant.id, limit=500)))
    now: datetime = ctx.grants.clock.now()
    return {
        "grant": grant,
        "now": now,
        "history": history,
        "open": grant.state is GrantState.PENDING,
        **_decision_offered(grant, who, now),
        "live": LIVE_EVERY_SECONDS if not grant.state.ended else None,
    }


def _decision_offered(grant: Grant, who: Viewer, now: datetime) -> dict[str, Any]:
    """What the Decide section offers this viewer: the form only to someone the service would let
    decide (never the requester), Approve only if an approval by them would count now; otherwise
    the reason, as the service would give it."""
    if grant.state is not GrantState.PENDING:
        return {"may_decide": False, "may_approve": False, "cannot_decide": ""}
    try:
        lifecycle.check_approver(grant, who.principal)
    except KubejitError as refused:
        why = f"Not yours to decide: {refused.message}. {refused.hint or ''}".rstrip()
        return {"may_decide": False, "may_approve": False, "cannot_decide": why}
    try:
        lifecycle.approve(grant, approver=who.principal, comment="", now=now)
    except KubejitError as refused:
        why = f"Approve is not offered: {refused.message}."
        return {"may_decide": True, "may_approve": False, "cannot_decide": why}
    return {"may_decide": True, "may_approve": True, "cannot_decide": ""}


def _other_grants(ctx: WebContext, who: Viewer, grant: Grant) -> list[Grant]:
    """The requester's recent grants this viewer may see (the service's visibility rule)."""
    recent = ctx.grants.list_grants(requester=grant.requester, limit=11)
    return [
        g
        for g in recent
        if g.id != grant.id and lifecycle.visible_to(g, who.principal, is_admin=who.is_admin)
    ][:10]


@dataclass(frozen=True)
class RoleView:
    namespace: str | None
    rules: list[dict[str, list[str]]]
    error: str = ""
    #: The rights of those rules that reach past the grant, for the approver (``WebContext.role_cautions``).
    cautions: tuple[str, ...] = ()


def _role_rules(ctx: WebContext, grant: Grant) -> list[RoleView]:
    """What the role allows, read from the cluster (a Role per namespace; a ClusterRole once)."""
    adapter = ctx.grants.clusters.get(grant.cluster)
    if not isinstance(adapter, RoleRules):
        return [RoleView(None, [], error="this cluster's adapter cannot read roles")]
    role = grant.role
    where: list[str | None] = list(grant.namespaces) if role.kind == "Role" else [None]
    views = []
    for ns in where:
        try:
            rules = adapter.role_rules(kind=role.kind, name=role.ref_name, namespace=ns)
            views.append(RoleView(ns, rules, cautions=tuple(ctx.role_cautions(rules))))
        except ClusterError as exc:
            views.append(RoleView(ns, [], error=exc.message))
    return views
