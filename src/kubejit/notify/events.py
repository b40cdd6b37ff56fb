"""Which audit events notify, and the Notice each one becomes.

Pure: it takes the stored event's plain fields (this layer sits below ``audit``), so the delivery
adapter decides only *whether* and *where* to send. Events that do not notify map to ``None`` and
just advance the channel's cursor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubejit.notify.message import Notice, NoticeKind, request_link

#: Audit action -> notice kind, for actions that always notify.
ACTION_KINDS: dict[str, NoticeKind] = {
    "grant.approved": "approved",
    "grant.activated": "activated",
    "grant.denied": "denied",
    "grant.break_glass": "break_glass",
    "grant.expiring_soon": "expiring_soon",
}


def notice_kind(action: str, details: Mapping[str, Any]) -> NoticeKind | None:
    """The kind of notice ``action`` raises; a request notifies only when it waits for approvers."""
    if action == "grant.requested":
        return "needs_approval" if details.get("decision") == "approval" else None
    return ACTION_KINDS.get(action)


def notice_for(
    *,
    action: str,
    grant_id: str | None,
    subject: str | None,
    cluster: str | None,
    details: Mapping[str, Any],
    public_url: str,
) -> Notice | None:
    """The Notice for one stored event, or None when the event does not notify."""
    kind = notice_kind(action, details)
    if kind is None or grant_id is None:
        return None
    namespaces = details.get("namespaces") or []
    return Notice(
        kind=kind,
        grant_id=grant_id,
        requester=subject or "",
        cluster=cluster or "",
        namespaces=tuple(str(n) for n in namespaces),
        role=str(details.get("role") or ""),
        reason=str(details.get("reason") or ""),
        ticket=str(details.get("ticket") or ""),
        link=request_link(public_url, grant_id),
    )
