"""HTTP bodies: strict pydantic models at the boundary; inside, the domain's frozen dataclasses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from kubejit.grants.model import Grant

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
]
Text = Annotated[str, StringConstraints(max_length=1000)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class GrantRequestIn(_In):
    cluster: Name
    namespaces: list[Name] = Field(min_length=1, max_length=20)
    role: Name
    duration: Annotated[str, StringConstraints(max_length=32)] | None = None
    reason: Text = ""
    ticket: Annotated[str, StringConstraints(max_length=100)] | None = None
    break_glass: bool = False


class ApproveIn(_In):
    comment: Text = ""


class DenyIn(_In):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class RevokeIn(_In):
    reason: Text = ""


class RevokeUserIn(_In):
    user: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    reason: Text = ""


class ExtendIn(_In):
    duration: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class DevLoginIn(_In):
    user: Name


class ApprovalOut(BaseModel):
    approver: str
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

    @classmethod
    def of(cls, grant: Grant) -> GrantOut:
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
