"""Pure grant transitions: each takes a grant and ``now`` and returns the next grant or raises.

Every rule about who may move a grant where lives here (self-approval, approver groups, extension
limits), so the API, the CLI and the workers can only ask, never re-check.

Approval rules count people, not logins: one human with two logins (``okta:alice``, ``google:alice``,
the same verified email as ``Principal.person``) gives one approval and cannot approve a request
made under the other login.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from kubejit.durations import format_duration
from kubejit.errors import (
    ApprovalRefused,
    InvalidTransition,
    PermissionDenied,
    RequestDenied,
    TooManyOpenGrants,
)
from kubejit.grants.model import Approval, Grant, GrantState
from kubejit.identity.principal import Principal
from kubejit.ids import ClusterName, GrantId, NamespaceName, PrincipalName
from kubejit.policy.model import AccessRequest, Decision, Outcome

OPEN_STATES = frozenset({GrantState.PENDING, GrantState.APPROVED, GrantState.ACTIVE})
STALE_APPROVAL_REASON = "approved, but its cluster was unavailable until the approval timed out"


def new_grant(
    grant_id: GrantId, *, principal: Principal, request: AccessRequest, decision: Decision, now: datetime
) -> Grant:
    """A grant for an allowed request: approved at once when policy auto-approves, else pending."""
    if decision.outcome is Outcome.DENY or decision.role is None:
        raise RequestDenied(decision.message, rule=decision.rule)
    return Grant(
        id=grant_id,
        requester=PrincipalName(principal.name),
        cluster=ClusterName(request.cluster),
        namespaces=tuple(NamespaceName(ns) for ns in request.namespaces),
        role=decision.role,
        duration=decision.duration,
        reason=request.reason.strip(),
        ticket=request.ticket,
        state=GrantState.APPROVED if decision.outcome is Outcome.AUTO else GrantState.PENDING,
        rule=decision.rule,
        created_at=now,
        pending_until=now + decision.pending_timeout,
        approvals_required=decision.approvals_required,
        approver_groups=decision.approver_groups,
        break_glass=decision.break_glass,
        reviewer_groups=decision.reviewers if decision.break_glass else frozenset(),
        extendable=decision.extendable,
        max_duration=decision.max_duration,
        requester_person=principal.person,
    )


def check_open_grants(requester: str, open_grants: int, *, cap: int | None) -> None:
    """Refuse a new request when ``requester`` already has ``cap`` pending, approved or active grants.

    Each open grant is rows, audit events and (once active) cluster objects: one person's script
    must not be able to pile them up without bound.
    """
    if cap is not None and open_grants >= cap:
        raise TooManyOpenGrants(
            f"{requester} already has {open_grants} open grants (pending, approved or active); "
            f"the broker allows at most {cap} per person (broker.maxOpenGrantsPerPerson)",
        )


def _require(grant: Grant, allowed: frozenset[GrantState], action: str) -> None:
    if grant.state not in allowed:
        raise InvalidTransition(
            f"cannot {action} grant {grant.id}: it is {grant.state}",
            hint="See its current state with `kubejit grants`.",
        )


def visible_to(grant: Grant, principal: Principal, *, is_admin: bool) -> bool:
    """Who may read a grant: its requester, an admin, or a member of one of its approver groups (or,
    for break-glass, of its reviewer groups: they must see what they review)."""
    deciders = grant.approver_groups | grant.reviewer_groups
    return grant.requester == principal.name or is_admin or bool(deciders & principal.groups)


def check_approver(grant: Grant, approver: Principal) -> None:
    """Raise unless ``approver`` may approve (or deny) this grant."""
    if approver.same_person(grant.requester, grant.requester_person):
        also = "" if approver.name == grant.requester else f" (made as {grant.requester}, the same person)"
        raise ApprovalRefused(
            f"you cannot approve or deny your own request {grant.id}{also}",
            hint=f"Ask someone in {', '.join(sorted(grant.approver_groups)) or 'an approver group'}.",
        )
    if not (approver.groups & grant.approver_groups):
        raise ApprovalRefused(
            f"{approver.name} is not an approver for grant {grant.id} (rule '{grant.rule}')",
            hint=f"Approvers must be in: {', '.join(sorted(grant.approver_groups)) or '(none: auto rule)'}.",
        )


def approve(grant: Grant, *, approver: Principal, comment: str, now: datetime) -> Grant:
    _require(grant, frozenset({GrantState.PENDING}), "approve")
    if now >= grant.pending_until:
        raise InvalidTransition(f"request {grant.id} timed out waiting for approval", hint="Request again.")
    check_approver(grant, approver)
    earlier = next((a for a in grant.approvals if approver.same_person(a.approver, a.person)), None)
    if earlier is not None:
        also = "" if earlier.approver == approver.name else f" (as {earlier.approver}, the same person)"
        raise ApprovalRefused(
            f"{approver.name} has already approved grant {grant.id}{also}",
            hint=f"It needs {grant.approvals_required} different people.",
        )
    approval = Approval(PrincipalName(approver.name), now, comment.strip(), person=approver.person)
    approvals = (*grant.approvals, approval)
    state = GrantState.APPROVED if len(approvals) >= grant.approvals_required else GrantState.PENDING
    return replace(grant, approvals=approvals, state=state)


def activate(grant: Grant, *, now: datetime) -> Grant:
    """Durations count from activation, not from the request; a stale approval never activates.

    A break-glass grant is flagged for review from here on (``grants.reviews``): nobody approved it.
    """
    _require(grant, frozenset({GrantState.APPROVED}), "activate")
    if activation_is_stale(grant, now=now):
        raise InvalidTransition(
            f"grant {grant.id} was approved but not activated within its pendingTimeout",
            hint="Request access again.",
        )
    return replace(
        grant,
        state=GrantState.ACTIVE,
        activated_at=now,
        expires_at=now + grant.duration,
        needs_review=grant.break_glass and grant.review is None,
    )


def activation_deadline(grant: Grant) -> datetime:
    """When an approved grant that never became active (its cluster was down) goes stale.

    An approval is a decision about *now*: activating it days later would hand out access nobody
    agreed to at that time. It is good for as long as a request may wait for one (the rule's
    ``pendingTimeout``, which is ``pending_until - created_at``), counted from the last approval,
    or from the request when policy approved it at once.
    """
    approved_at = grant.approvals[-1].at if grant.approvals else grant.created_at
    return approved_at + (grant.pending_until - grant.created_at)


def activation_is_stale(grant: Grant, *, now: datetime) -> bool:
    return grant.state is GrantState.APPROVED and now >= activation_deadline(grant)


def _end(grant: Grant, state: GrantState, *, by: str | None, reason: str, now: datetime) -> Grant:
    return replace(
        grant,
        state=state,
        ended_at=now,
        ended_by=PrincipalName(by) if by else None,
        end_reason=reason.strip(),
    )


def deny(grant: Grant, *, approver: Principal, reason: str, now: datetime) -> Grant:
    """An approver may deny a pending request, or end an approved or active one."""
    _require(grant, OPEN_STATES, "deny")
    check_approver(grant, approver)
    return _end(grant, GrantState.DENIED, by=approver.name, reason=reason, now=now)


def revoke(grant: Grant, *, actor: Principal, is_admin: bool, reason: str, now: datetime) -> Grant:
    _require(grant, OPEN_STATES, "revoke")
    if actor.name != grant.requester and not is_admin and not (actor.groups & grant.approver_groups):
        raise PermissionDenied(
            f"{actor.name} may not revoke grant {grant.id}",
            hint="Only the requester, its approvers and kubejit admins can revoke a grant.",
        )
    return _end(grant, GrantState.REVOKED, by=actor.name, reason=reason, now=now)


def expire(grant: Grant, *, now: datetime) -> Grant:
    """End an active grant past its end time, a pending request nobody decided in time, or an
    approval that could not be activated in time (its cluster was unavailable)."""
    if grant.state is GrantState.PENDING:
        return _end(
            grant, GrantState.EXPIRED, by=None, reason="no decision before the request timed out", now=now
        )
    if activation_is_stale(grant, now=now):
        return _end(grant, GrantState.EXPIRED, by=None, reason=STALE_APPROVAL_REASON, now=now)
    _require(grant, frozenset({GrantState.ACTIVE}), "expire")
    return _end(grant, GrantState.EXPIRED, by=None, reason="duration elapsed", now=now)


def fail(grant: Grant, *, reason: str, now: datetime) -> Grant:
    _require(grant, frozenset({GrantState.APPROVED}), "fail")
    return _end(grant, GrantState.FAILED, by=None, reason=reason, now=now)


def check_still_allowed(grant: Grant, decision: Decision, *, action: str) -> None:
    """Extending a grant or minting its token needs policy to allow it *now*, to the caller as they
    are now (their current groups, today's deny rules): a grant is not a licence to outlive the rule.
    """
    if decision.allowed:
        return
    raise RequestDenied(
        f"cannot {action} grant {grant.id}: policy no longer allows {grant.role.name} on "
        f"{grant.cluster}/{','.join(grant.namespaces)} for you ({decision.message})",
        rule=decision.rule,
        hint="Your groups or the policy changed since it was granted. Request access again with "
        f"`kubejit request --cluster {grant.cluster} ...`; see why with `kubejit policy check`.",
    )


def extend(
    grant: Grant, *, actor: Principal, by: timedelta, now: datetime, current: Decision | None = None
) -> Grant:
    """``current`` is policy's decision on the grant's access for ``actor`` now: it must still allow it."""
    _require(grant, frozenset({GrantState.ACTIVE}), "extend")
    if actor.name != grant.requester:
        raise PermissionDenied(f"only {grant.requester} can extend grant {grant.id}")
    if current is not None:
        check_still_allowed(grant, current, action="extend")
        grant = replace(
            grant,
            extendable=grant.extendable and current.extendable,
            max_duration=min(grant.max_duration, current.max_duration),
        )
    if not grant.extendable:
        raise RequestDenied(
            f"rule '{grant.rule}' does not allow extending grant {grant.id}",
            rule=grant.rule,
            hint="Request new access with `kubejit request` instead.",
        )
    assert grant.activated_at is not None and grant.expires_at is not None
    new_duration = grant.expires_at + by - grant.activated_at
    if new_duration > grant.max_duration:
        raise RequestDenied(
            f"rule '{grant.rule}' allows at most {format_duration(grant.max_duration)} in total; "
            f"extending by {format_duration(by)} would make it {format_duration(new_duration)}",
            rule=grant.rule,
        )
    return replace(grant, duration=new_duration, expires_at=grant.expires_at + by)
