"""Stored audit events as OCSF-shaped JSON (Open Cybersecurity Schema Framework 1.1), pure mapping.

SIEMs ingest OCSF without a custom parser. kubejit's events fall into three OCSF classes of the
Identity & Access Management category: Authentication (logins, failures, token mints and refreshes),
Authorize Session (requests, decisions, approvals, activations) and Account Change (the per-grant
ServiceAccount gaining or losing its bindings). The broker's own events (start, config change,
checkpoints) use the OCSF Base Event. Everything kubejit knows that OCSF has no field for stays
under ``unmapped.kubejit``, hash chain included, so nothing is lost in the export.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from kubejit import __version__
from kubejit.audit.event import StoredEvent, rfc3339

OCSF_VERSION: Final = "1.1.0"
IAM_CATEGORY: Final = (3, "Identity & Access Management")

AUTHENTICATION: Final = (3002, "Authentication")
AUTHORIZE_SESSION: Final = (3003, "Authorize Session")
ACCOUNT_CHANGE: Final = (3001, "Account Change")
BASE_EVENT: Final = (0, "Base Event")


class Mapping(NamedTuple):
    ocsf_class: tuple[int, str]
    activity_id: int
    activity_name: str


_OTHER = 99
MAPPINGS: Final[dict[str, Mapping]] = {
    "auth.login": Mapping(AUTHENTICATION, 1, "Logon"),
    "auth.failed": Mapping(AUTHENTICATION, 1, "Logon"),
    "auth.logout": Mapping(AUTHENTICATION, 2, "Logoff"),
    "token.minted": Mapping(AUTHENTICATION, 4, "Service Ticket Request"),
    "token.refreshed": Mapping(AUTHENTICATION, 5, "Service Ticket Renew"),
    "policy.decided": Mapping(AUTHORIZE_SESSION, _OTHER, "Policy Decision"),
    "grant.requested": Mapping(AUTHORIZE_SESSION, _OTHER, "Access Request"),
    "grant.request_denied": Mapping(AUTHORIZE_SESSION, _OTHER, "Access Request"),
    "grant.approval_recorded": Mapping(AUTHORIZE_SESSION, _OTHER, "Approval"),
    "grant.approved": Mapping(AUTHORIZE_SESSION, _OTHER, "Approval"),
    "grant.denied": Mapping(AUTHORIZE_SESSION, _OTHER, "Denial"),
    "grant.reviewed": Mapping(AUTHORIZE_SESSION, _OTHER, "Review"),
    "grant.break_glass": Mapping(AUTHORIZE_SESSION, 1, "Assign Privileges"),
    "grant.activated": Mapping(AUTHORIZE_SESSION, 1, "Assign Privileges"),
    "grant.extended": Mapping(AUTHORIZE_SESSION, 1, "Assign Privileges"),
    "grant.revoked": Mapping(ACCOUNT_CHANGE, 8, "Detach Policy"),
    "grant.expired": Mapping(ACCOUNT_CHANGE, 8, "Detach Policy"),
    "grant.failed": Mapping(ACCOUNT_CHANGE, 8, "Detach Policy"),
    "grant.cleaned_up": Mapping(ACCOUNT_CHANGE, 6, "Delete"),
    "grant.cleanup_deferred": Mapping(ACCOUNT_CHANGE, _OTHER, "Cleanup Deferred"),
    "reconciler.deleted_orphans": Mapping(ACCOUNT_CHANGE, 6, "Delete"),
    "reconciler.restored": Mapping(ACCOUNT_CHANGE, 7, "Attach Policy"),
}

_FAILED_OUTCOMES = {"failure", "denied", "deny", "error"}
#: OCSF severity ids: 1 Informational, 3 Medium, 4 High.
_SEVERITY = {1: "Informational", 3: "Medium", 4: "High"}


def mapping_for(action: str) -> Mapping:
    return MAPPINGS.get(action, Mapping(BASE_EVENT, _OTHER, action))


def _severity(event: StoredEvent) -> int:
    if event.details.get("break_glass") and event.action in ("grant.break_glass", "grant.activated"):
        return 4  # emergency access is always worth a look
    if event.outcome in _FAILED_OUTCOMES:
        return 3
    return 1


def to_ocsf(event: StoredEvent) -> dict[str, Any]:
    """One OCSF event for one stored kubejit event."""
    mapped = mapping_for(event.action)
    class_uid, class_name = mapped.ocsf_class
    failed = event.outcome in _FAILED_OUTCOMES
    severity = _severity(event)
    details = event.details
    out: dict[str, Any] = {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": IAM_CATEGORY[0] if class_uid else 0,
        "category_name": IAM_CATEGORY[1] if class_uid else "Uncategorized",
        "activity_id": mapped.activity_id,
        "activity_name": mapped.activity_name,
        "type_uid": class_uid * 100 + mapped.activity_id,
        "time": int(event.at.timestamp() * 1000),
        "time_dt": rfc3339(event.at),
        "severity_id": severity,
        "severity": _SEVERITY[severity],
        "status_id": 2 if failed else 1,
        "status": "Failure" if failed else "Success",
        "message": _message(event),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": event.event_id,
            "sequence": event.seq,
            "log_name": "kubejit-audit",
            "product": {"name": "kubejit", "vendor_name": "kubejit", "version": __version__},
        },
        "actor": {"user": {"name": event.actor}},
        "unmapped": {"kubejit": event.to_dict()},
    }
    if event.subject:
        out["user"] = {"name": event.subject}
    if class_uid == ACCOUNT_CHANGE[0] and event.grant_id:
        # The account that changed is the grant's ServiceAccount, not the person.
        out["user"] = {"name": f"kubejit-{event.grant_id}", "type": "ServiceAccount"}
    if class_uid == AUTHORIZE_SESSION[0] and details.get("role"):
        out["privileges"] = [str(details["role"])]
    if details.get("source_ip"):
        out["src_endpoint"] = {"ip": details["source_ip"]}
    if details.get("user_agent"):
        out["http_request"] = {"user_agent": details["user_agent"]}
    if event.cluster:
        out["cloud"] = {"provider": "kubernetes", "region": event.cluster}
    return out


def _message(event: StoredEvent) -> str:
    parts = [event.action, f"by {event.actor}"]
    if event.subject and event.subject != event.actor:
        parts.append(f"for {event.subject}")
    if event.grant_id:
        parts.append(f"grant {event.grant_id}")
    if event.cluster:
        parts.append(f"on {event.cluster}")
    return " ".join(parts) + f" ({event.outcome})"
