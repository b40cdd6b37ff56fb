"""Who am I, dev login and the cluster list."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from kubejit.durations import format_duration
from kubejit.errors import NotFound
from kubejit.policy.evaluate import user_may_request
from kubejit.policy.model import Rule
from kubejit.server.audit_records import login_event
from kubejit.server.deps import Svc, Who
from kubejit.server.schemas import ClusterOut, DevLoginIn, DevLoginOut, WhoAmIOut

router = APIRouter(prefix="/v1", tags=["identity"])


@router.post("/dev/login", response_model=DevLoginOut)
def dev_login(body: DevLoginIn, svc: Svc) -> DevLoginOut:
    """Issue a token for a configured dev user (only when the dev issuer is enabled)."""
    if svc.dev_issuer is None:
        raise NotFound("the dev issuer is not enabled on this broker", hint="Log in with your IdP.")
    token = svc.dev_issuer.issue(body.user)
    svc.grants.store.record([login_event(body.user, issuer="dev", at=svc.grants.clock.now())])
    return DevLoginOut(token=token, user=body.user)


@router.get("/whoami", response_model=WhoAmIOut)
def whoami(who: Who, svc: Svc) -> WhoAmIOut:
    rules = user_may_request(svc.grants.policy, who)
    return WhoAmIOut(
        name=who.name,
        groups=sorted(who.groups),
        issuer=who.issuer,
        admin=svc.grants.is_admin(who),
        may_request=[describe_rule(r) for r in rules],
    )


@router.get("/clusters", response_model=list[ClusterOut], tags=["clusters"])
def clusters(who: Who, svc: Svc) -> Sequence[ClusterOut]:
    return svc.clusters


def describe_rule(rule: Rule) -> str:
    approval = "auto-approved" if rule.approvals_required == 0 else f"{rule.approvals_required} approver(s)"
    return (
        f"{rule.name}: {', '.join(rule.roles)} in {', '.join(rule.namespaces)} on "
        f"{', '.join(rule.clusters)}, up to {format_duration(rule.max_duration)}, {approval}"
    )
