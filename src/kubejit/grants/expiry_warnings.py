"""The ``grant.expiring_soon`` event: a holder is told before their access ends, once per grant end.

Pure: which grants are due a warning and what the event says. The store makes it happen once across
replicas and restarts (a row keyed by grant and end, written with the event in one transaction), so
an extension (a new end) is warned about again and a repeated sweep is not.
"""

from __future__ import annotations

from datetime import datetime

from kubejit.grants.model import SYSTEM_ACTOR, Grant, GrantState
from kubejit.grants.ports import AuditEvent

ACTION = "grant.expiring_soon"


def due_warning(grant: Grant, *, now: datetime, window_seconds: float) -> bool:
    """An active grant whose end is within the window and still ahead."""
    if grant.state is not GrantState.ACTIVE or grant.expires_at is None:
        return False
    left = (grant.expires_at - now).total_seconds()
    return 0 < left <= window_seconds


def expiring_soon_event(grant: Grant, *, now: datetime) -> AuditEvent:
    """The event, with the facts every grant event carries (so a notice can show them)."""
    assert grant.expires_at is not None
    return AuditEvent(
        action=ACTION,
        actor=SYSTEM_ACTOR,
        at=now,
        grant_id=grant.id,
        subject=grant.requester,
        cluster=grant.cluster,
        details={
            "namespaces": list(grant.namespaces),
            "role": grant.role.name,
            "state": str(grant.state),
            "rule": grant.rule,
            "reason": grant.reason,
            "ticket": grant.ticket,
            "break_glass": grant.break_glass,
            "expires_at": grant.expires_at,
            "seconds_left": max(0, int((grant.expires_at - now).total_seconds())),
        },
    )
