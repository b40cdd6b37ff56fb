"""One notification's facts, independent of the channel that carries it.

Built from an audit event; it never holds a token or a secret, only what an approver needs to decide.
Requester-supplied text (reason, ticket) is kept raw here and escaped by each format in ``formats``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NoticeKind = Literal["needs_approval", "approved", "activated", "denied", "expiring_soon", "break_glass"]

TITLES: dict[NoticeKind, str] = {
    "needs_approval": "Access request needs approval",
    "approved": "Access request approved",
    "activated": "Access grant active",
    "denied": "Access request denied",
    "expiring_soon": "Access grant expiring soon",
    "break_glass": "Break-glass access used: review required",
}


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    grant_id: str
    requester: str
    cluster: str
    namespaces: tuple[str, ...]
    role: str
    reason: str
    ticket: str
    link: str

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    def facts(self) -> list[tuple[str, str]]:
        """The (label, raw value) pairs every format shows, in order."""
        return [
            ("Requester", self.requester),
            ("Cluster", self.cluster),
            ("Namespaces", ", ".join(self.namespaces) or "(cluster-wide)"),
            ("Role", self.role),
            ("Reason", self.reason),
            ("Ticket", self.ticket or "-"),
            ("Grant", self.grant_id),
        ]


def request_link(public_url: str, grant_id: str) -> str:
    """The request's page, the link in every notification."""
    return f"{public_url.rstrip('/')}/ui/requests/{grant_id}"
