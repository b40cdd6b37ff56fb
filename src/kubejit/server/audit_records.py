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
from typing import Any

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
    """``broker.started`` with both hashes, preceded by a ``*.changed`` event for each that changed.

    Compared with the previous start under the writer lock: replicas started together with a new
    policy record one ``policy.changed``, not one each.
    """
    hashes = {"config": settings_sha256(settings), "policy": file_sha256(settings.policy_file)}
    now = clock.now()

    def events(newest: list[tuple[str, dict[str, Any]]]) -> list[AuditEvent]:
        before: dict[str, Any] = {}
        for action, details in newest:  # chain order: a reload after the last start is the policy now
            if action == "broker.started":
                before = dict(details)
            else:
                before["policy_sha256"] = details.get("sha256")
        changed = [
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
        started = AuditEvent(
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
        return [*changed, started]

    store.record_after_last(("broker.started", "policy.reloaded"), events)


def checkpoint_worker(checkpointer: Checkpointer, *, interval: float) -> Worker:
    """Signs the chain's head every ``interval`` seconds (and at once at start), when it moved."""
    return Worker("audit-checkpoint", checkpointer.tick, interval=interval)


def login_event(user: str, *, issuer: str, at: datetime, outcome: str = "success") -> AuditEvent:
    """``auth.login``: a person obtained a broker session (source IP and user agent are added by the store)."""
    return AuditEvent(
        action="auth.login", actor=user, at=at, outcome=outcome, subject=user, details={"issuer": issuer}
    )
