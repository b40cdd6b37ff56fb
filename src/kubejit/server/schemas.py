"""HTTP bodies: strict pydantic models at the boundary; inside, the domain's frozen dataclasses.

Every constraint is one the OpenAPI document shows (lengths, patterns, enums), so a client that
follows the document is never refused for its form. Free text (reasons, comments, tickets, user names)
is one line of printable text: a control character (C0, DEL or C1, e.g. ESC) is refused with 422,
never stored, because approvers read these strings in their terminals (docs/api.md).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

from kubejit.grants.locks import Lock
from kubejit.grants.model import Grant
from kubejit.notify.message import request_link

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
]
#: Control characters (C0, DEL, C1) and the bidirectional controls that reorder what a terminal shows
#: (Trojan Source: U+061C, U+200E/F, U+202A-E, U+2066-9).
_UNSAFE = r"\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
#: One line of text without those.
PRINTABLE = rf"^[^{_UNSAFE}]*$"
#: The same, with at least one character that is not a space.
PRINTABLE_NONBLANK = rf"^[^{_UNSAFE}]*[^\x20{_UNSAFE}][^{_UNSAFE}]*$"
#: What ``durations.parse_duration`` reads: whole numbers with a unit, e.g. 30m, 1h30m, not all zero.
#: Its other bound, at most 31 days in all, is no pattern: the description says it, the API answers 422.
DURATION = r"^([0-9]+[smhdSMHD])*0*[1-9][0-9]*[smhdSMHD]([0-9]+[smhdSMHD])*$"


def _printable(value: str) -> str:
    bad = next((c for c in value if re.fullmatch(f"[{_UNSAFE}]", c)), None)
    if bad is not None:
        raise ValueError(
            f"must be one line of printable text; control character U+{ord(bad):04X} is not allowed"
        )
    return value


def _nonblank(value: str) -> str:
    if not re.fullmatch(PRINTABLE_NONBLANK, _printable(value)):
        raise ValueError("must not be blank")
    return value


Text = Annotated[
    str,
    StringConstraints(max_length=1000),
    AfterValidator(_printable),
    Field(json_schema_extra={"pattern": PRINTABLE}),
]
RequiredText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1000),
    AfterValidator(_nonblank),
    Field(json_schema_extra={"pattern": PRINTABLE_NONBLANK}),
]
Ticket = Annotated[
    str,
    StringConstraints(max_length=100),
    AfterValidator(_printable),
    Field(json_schema_extra={"pattern": PRINTABLE}),
]
#: A principal's name as stored (the requester column holds 255 characters).
UserName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255),
    AfterValidator(_nonblank),
    Field(json_schema_extra={"pattern": PRINTABLE_NONBLANK}),
]
Duration = Annotated[
    str,
    StringConstraints(min_length=2, max_length=32, pattern=DURATION),
    Field(description="e.g. 30m, 1h30m, 2d: greater than zero and at most 31 days in all"),
]


class _In(BaseModel):
    # No whitespace stripping and no coercion (0 is no boolean): what the document allows is exactly
    # what is accepted.
    model_config = ConfigDict(extra="forbid", strict=True)


class GrantRequestIn(_In):
    cluster: Name
    #: One or more for a namespaced role; none (empty or left out) for a cluster-wide role.
    namespaces: list[Name] = Field(
        default_factory=list,
        max_length=20,
        json_schema_extra={"uniqueItems": True},
        description="The namespaces to access; leave it empty for a cluster-wide role (clusterScope: true).",
    )
    role: Name
    duration: Duration | None = None
    reason: Text = ""
    ticket: Ticket | None = None
    break_glass: bool = False


class ApproveIn(_In):
    comment: Text = ""


class DenyIn(_In):
    reason: RequiredText


class ReviewIn(_In):
    #: What was checked and found; required (a review without one is no review).
    comment: RequiredText


class RevokeIn(_In):
    reason: Text = ""


class RevokeUserIn(_In):
    user: UserName
    reason: Text = ""
    #: False: end the grants without locking the person out (docs/offboarding.md).
    lock: bool = True


class ExtendIn(_In):
    duration: Duration


class DevLoginIn(_In):
    user: Name


class ApprovalOut(BaseModel):
    approver: str
    at: datetime
    comment: str


class ReviewOut(BaseModel):
    reviewer: str
    at: datetime
    comment: str


class GrantOut(BaseModel):
    id: str
    requester: str
    cluster: str
    namespaces: list[str]
    role: str
    state: str
    rule: str
    reason: str
    ticket: str | None
    duration_seconds: int
    created_at: datetime
    pending_until: datetime
    activated_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None
    end_reason: str
    approvals_required: int
    approver_groups: list[str]
    approvals: list[ApprovalOut]
    break_glass: bool
    extendable: bool
    #: Break-glass: who reviews its use afterwards (besides admins), whether that is still due, the review.
    reviewer_groups: list[str] = Field(default_factory=list)
    needs_review: bool = False
    review: ReviewOut | None = None
    #: The request's page (``{broker.publicUrl}/ui/requests/{id}``, the link notifications carry);
    #: null in answers that list grants ended by a lock or offboarding.
    ui_url: str | None = None

    @classmethod
    def of(cls, grant: Grant, public_url: str | None = None) -> GrantOut:
        return cls(
            id=grant.id,
            requester=grant.requester,
            cluster=grant.cluster,
            namespaces=list(grant.namespaces),
            role=grant.role.name,
            state=str(grant.state),
            rule=grant.rule,
            reason=grant.reason,
            ticket=grant.ticket,
            duration_seconds=int(grant.duration.total_seconds()),
            created_at=grant.created_at,
            pending_until=grant.pending_until,
            activated_at=grant.activated_at,
            expires_at=grant.expires_at,
            ended_at=grant.ended_at,
            ended_by=grant.ended_by,
            end_reason=grant.end_reason,
            approvals_required=grant.approvals_required,
            approver_groups=sorted(grant.approver_groups),
            approvals=[ApprovalOut(approver=a.approver, at=a.at, comment=a.comment) for a in grant.approvals],
            break_glass=grant.break_glass,
            extendable=grant.extendable,
            reviewer_groups=sorted(grant.reviewer_groups),
            needs_review=grant.needs_review,
            review=(
                ReviewOut(reviewer=grant.review.reviewer, at=grant.review.at, comment=grant.review.comment)
                if grant.review
                else None
            ),
            ui_url=request_link(public_url, grant.id) if public_url else None,
        )


class TokenOut(BaseModel):
    grant_id: str
    token: str
    expiration_timestamp: datetime
    token_id: str
    #: The grant's state and end, so the exec plugin needs no second request (``kubejit.local.wire``).
    state: str
    expires_at: datetime | None


class DevLoginOut(BaseModel):
    token: str
    user: str


class WhoAmIOut(BaseModel):
    name: str
    groups: list[str]
    issuer: str
    admin: bool
    may_request: list[str]


class ClusterOut(BaseModel):
    """What a kubeconfig needs to reach a cluster; never a credential."""

    name: str
    audience: str
    server: str | None = None
    certificate_authority_data: str | None = None


#: A user or group name, or a grant id: one line of printable text like every name people read.
LockTarget = UserName


_LOCK_TARGETS = ("user", "group", "grant")


class LockIn(_In):
    """Exactly one of user, group, grant (the document says so with ``oneOf``)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": [name]} for name in _LOCK_TARGETS]})

    # Left out, not null: null would let a body name two targets that the document forbids.
    user: LockTarget | SkipJsonSchema[None] = None
    group: LockTarget | SkipJsonSchema[None] = None
    grant: LockTarget | SkipJsonSchema[None] = None
    reason: RequiredText
    #: How long, e.g. 1h; absent: until an admin unlocks it.
    duration: Duration | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_target(cls, body: object) -> object:
        if isinstance(body, dict):
            given = [name for name in _LOCK_TARGETS if name in body]
            if len(given) != 1:
                raise ValueError("give exactly one of user, group or grant")
            if body[given[0]] is None:
                raise ValueError(f"{given[0]} must be a name, not null")
        return body


class LockOut(BaseModel):
    id: str
    kind: str
    target: str
    reason: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    removed_at: datetime | None
    removed_by: str | None

    @classmethod
    def of(cls, lock: Lock) -> LockOut:
        return cls(
            id=lock.id,
            kind=str(lock.kind),
            target=lock.target,
            reason=lock.reason,
            created_by=lock.created_by,
            created_at=lock.created_at,
            expires_at=lock.expires_at,
            removed_at=lock.removed_at,
            removed_by=lock.removed_by,
        )


class EndedGrantsOut(BaseModel):
    """What ending grants did: ended now, skipped (had ended meanwhile), cleanup left to the reconciler."""

    ended: list[GrantOut]
    skipped: list[str]
    cleanup_deferred: list[str]


class OffboardingOut(EndedGrantsOut):
    user: str
    lock: LockOut | None
    lock_created: bool
    message: str


class LockCreatedOut(EndedGrantsOut):
    lock: LockOut
    message: str
