"""The policy file re-read while the broker runs: a valid new version is applied, an invalid one refused.

The file is polled by content hash (a ConfigMap update swaps a symlink, which inotify on the file
never sees). Each outcome is audited with the file's sha256, the same hash ``broker.started`` and
``sha256sum`` give: ``policy.reloaded`` when the new policy now decides every request, or
``policy.reload_refused`` with the error (``file:line:column``) while the previous policy stays.
Every replica watches its own mounted copy, so each records its own reload.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubejit.clock import Clock
from kubejit.errors import PolicyError
from kubejit.grants.ports import AuditEvent, AuditLog
from kubejit.grants.service import GrantService
from kubejit.policy.load import parse_policy
from kubejit.policy.model import Policy
from kubejit.server.file_watch import ContentWatch, digest

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "kubejit"


@dataclass(frozen=True)
class Refusal:
    sha256: str
    error: str


class PolicyReload:
    """One ``tick`` per interval: reads the file, and swaps the service's policy when it changed."""

    def __init__(
        self,
        path: Path,
        *,
        service: GrantService,
        audit: AuditLog,
        clock: Clock,
        protected_namespaces: frozenset[str],
        loaded_sha256: str | None = None,
        on_applied: Callable[[Policy], None] = lambda _policy: None,
    ) -> None:
        """``loaded_sha256``: the file's hash read before the running policy was (a change in
        between is then seen, and applied, by the first tick). ``on_applied``: called with each new
        policy once it decides (the notification routes are checked against it)."""
        self._path = path
        self._service = service
        self._audit = audit
        self._clock = clock
        self._protected = protected_namespaces
        self._on_applied = on_applied
        self.sha256 = loaded_sha256 or digest([path.read_bytes()])
        #: The file's current version when it was refused (cleared by the next good one).
        self.refused: Refusal | None = None
        self._watch = ContentWatch([path], current=self.sha256)

    def tick(self) -> bool:
        """True when a new policy was applied."""
        found = self._watch.changed()
        if found is None:
            return False
        sha256, (content,) = found
        try:
            policy = parse_policy(
                content.decode("utf-8", errors="replace"),
                source=str(self._path),
                protected_namespaces=self._protected,
            )
        except PolicyError as exc:
            self.refused = Refusal(sha256, exc.message)
            log.error("policy %s refused, the previous policy stays: %s", sha256[:16], exc.message)
            self._record("policy.reload_refused", "failure", sha256=sha256, error=exc.message[:2000])
            return False
        previous, self.sha256, self.refused = self.sha256, sha256, None
        self._service.policy = policy
        log.info("policy reloaded from %s (sha256 %s)", self._path, sha256[:16])
        self._record("policy.reloaded", "success", sha256=sha256, previous_sha256=previous)
        self._on_applied(policy)
        return True

    def status(self) -> dict[str, object]:
        """For /readyz: the hash of the policy deciding requests, and a refused newer file if any."""
        body: dict[str, object] = {"sha256": self.sha256, "source": str(self._path)}
        if self.refused is not None:
            body["refused"] = {"sha256": self.refused.sha256, "error": self.refused.error[:300]}
        return body

    def _record(self, action: str, outcome: str, **details: object) -> None:
        event = AuditEvent(
            action=action,
            actor=SYSTEM_ACTOR,
            at=self._clock.now(),
            outcome=outcome,
            details={**details, "source": str(self._path), "replica": socket.gethostname()},
        )
        self._audit.record([event])
