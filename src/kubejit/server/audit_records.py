"""What the broker records about itself: the config and policy it runs with, and signed checkpoints.

At every start the broker records the sha256 of its settings and of its policy file, and a
``config.changed`` / ``policy.changed`` event when either differs from the previous start: a policy
edited between two restarts is visible in the audit log, with the hashes to compare against Git
(a version the broker already applied while running, ``policy.reloaded``, is no change).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from kubejit import __version__
from kubejit.audit.chain import canonical_json
from kubejit.clock import Clock
from kubejit.config import Settings
from kubejit.grants.ports import AuditEvent
from kubejit.server.workers import Worker
from kubejit.store.audit_store import SqlAuditStore
from kubejit.store.checkpoints import Checkpointer

SYSTEM_ACTOR = "kubejit"


def settings_sha256(settings: Settings) -> str:
    return hashlib.sha256(canonical_json(settings.model_dump(mode="json")).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record_start(store: SqlAuditStore, settings: Settings, *, clock: Clock) -> None:
    """``broker.started`` with both hashes, preceded by a ``*.changed`` event for each that changed."""
    hashes = {"config": settings_sha256(settings), "policy": file_sha256(settings.policy_file)}
    previous = store.search_events(action="broker.started", limit=1)
    before = dict(previous[0].details) if previous else {}
    reloaded = store.search_events(action="policy.reloaded", limit=1)
    if reloaded and (not previous or reloaded[0].seq > previous[0].seq):
        before["policy_sha256"] = reloaded[0].details.get("sha256")  # applied while running: no change
    now = clock.now()
    events = [
        AuditEvent(
            action=f"{what}.changed",
            actor=SYSTEM_ACTOR,
            at=now,
            details={
                "sha256": digest,
                "previous_sha256": before.get(f"{what}_sha256"),
                "source": str(settings.policy_file) if what == "policy" else None,
            },
        )
        for what, digest in hashes.items()
        if before.get(f"{what}_sha256") != digest
    ]
    events.append(
        AuditEvent(
            action="broker.started",
            actor=SYSTEM_ACTOR,
            at=now,
            details={
                "version": __version__,
                "config_sha256": hashes["config"],
                "policy_sha256": hashes["policy"],
                "clusters": sorted(c.name for c in settings.clusters),
            },
        )
    )
    store.record(events)


def checkpoint_worker(checkpointer: Checkpointer, *, interval: float) -> Worker:
    """Signs the chain's head every ``interval`` seconds (and at once at start), when it moved."""
    return Worker("audit-checkpoint", checkpointer.tick, interval=interval)


def login_event(user: str, *, issuer: str, at: datetime, outcome: str = "success") -> AuditEvent:
    """``auth.login``: a person obtained a broker session (source IP and user agent are added by the store)."""
    return AuditEvent(
        action="auth.login", actor=user, at=at, outcome=outcome, subject=user, details={"issuer": issuer}
    )
