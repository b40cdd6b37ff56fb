"""Grant <-> row mapping. Lists and sets become JSON arrays (sets sorted, so equal grants store equally)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubejit.grants.model import Approval, Grant, GrantState, Review
from kubejit.ids import ClusterName, GrantId, NamespaceName, PrincipalName
from kubejit.policy.model import RoleRef


def grant_to_row(grant: Grant) -> dict[str, Any]:
    """Every column but ``version``, which the store sets."""
    return {
        "id": grant.id,
        "requester": grant.requester,
        "cluster": grant.cluster,
        "namespaces": list(grant.namespaces),
        "role_name": grant.role.name,
        "role_kind": grant.role.kind,
        "role_ref_name": grant.role.ref_name,
        "role_cluster_scope": grant.role.cluster_scope,
        "duration_seconds": _seconds(grant.duration),
        "reason": grant.reason,
        "ticket": grant.ticket,
        "state": grant.state.value,
        "rule": grant.rule,
        "created_at": _aware(grant.created_at),
        "pending_until": _aware(grant.pending_until),
        "approvals_required": grant.approvals_required,
        "approver_groups": sorted(grant.approver_groups),
        "approvals": [
            {"approver": a.approver, "at": _aware(a.at).isoformat(), "comment": a.comment, "person": a.person}
            for a in grant.approvals
        ],
        "break_glass": grant.break_glass,
        "extendable": grant.extendable,
        "max_duration_seconds": _seconds(grant.max_duration),
        "activated_at": _aware_or_none(grant.activated_at),
        "expires_at": _aware_or_none(grant.expires_at),
        "ended_at": _aware_or_none(grant.ended_at),
        "ended_by": grant.ended_by,
        "end_reason": grant.end_reason,
        "requester_person": grant.requester_person,
        "reviewer_groups": sorted(grant.reviewer_groups),
        "needs_review": grant.needs_review,
        "review": _review_to_json(grant.review),
    }


def row_to_grant(row: Any) -> Grant:
    return Grant(
        id=GrantId(row["id"]),
        requester=PrincipalName(row["requester"]),
        cluster=ClusterName(row["cluster"]),
        namespaces=tuple(NamespaceName(ns) for ns in row["namespaces"]),
        role=RoleRef(
            name=row["role_name"],
            kind=row["role_kind"],
            ref_name=row["role_ref_name"],
            cluster_scope=bool(row["role_cluster_scope"]),
        ),
        duration=timedelta(seconds=row["duration_seconds"]),
        reason=row["reason"],
        ticket=row["ticket"],
        state=GrantState(row["state"]),
        rule=row["rule"],
        created_at=row["created_at"],
        pending_until=row["pending_until"],
        approvals_required=row["approvals_required"],
        approver_groups=frozenset(row["approver_groups"]),
        approvals=tuple(
            Approval(
                approver=PrincipalName(a["approver"]),
                at=datetime.fromisoformat(a["at"]).astimezone(UTC),
                comment=a["comment"],
                person=a.get("person"),  # absent in rows written before people were recorded
            )
            for a in row["approvals"]
        ),
        break_glass=bool(row["break_glass"]),
        extendable=bool(row["extendable"]),
        max_duration=timedelta(seconds=row["max_duration_seconds"]),
        activated_at=row["activated_at"],
        expires_at=row["expires_at"],
        ended_at=row["ended_at"],
        ended_by=PrincipalName(row["ended_by"]) if row["ended_by"] is not None else None,
        end_reason=row["end_reason"],
        version=row["version"],
        requester_person=row["requester_person"],
        reviewer_groups=frozenset(row["reviewer_groups"]),
        needs_review=bool(row["needs_review"]),
        review=_review_from_json(row["review"]),
    )


def _review_to_json(review: Review | None) -> dict[str, Any] | None:
    if review is None:
        return None
    return {
        "reviewer": review.reviewer,
        "at": _aware(review.at).isoformat(),
        "comment": review.comment,
        "person": review.person,
    }


def _review_from_json(value: Any) -> Review | None:
    if value is None:
        return None
    return Review(
        reviewer=PrincipalName(value["reviewer"]),
        at=datetime.fromisoformat(value["at"]).astimezone(UTC),
        comment=value["comment"],
        person=value.get("person"),
    )


def _seconds(delta: timedelta) -> int:
    seconds = delta.total_seconds()
    if seconds != int(seconds):
        raise ValueError(f"duration {delta} has a fraction of a second; kubejit stores whole seconds")
    return int(seconds)


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: grant times must be timezone-aware (UTC)")
    return at.astimezone(UTC)


def _aware_or_none(at: datetime | None) -> datetime | None:
    return None if at is None else _aware(at)
