"""Who am I, how to log in (issuers, dev login) and the cluster list."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request
from pydantic import BaseModel

from kubejit.checks import is_loopback
from kubejit.durations import format_duration
from kubejit.errors import NotFound, PermissionDenied
from kubejit.policy.evaluate import user_may_request
from kubejit.policy.glob import is_glob, matches
from kubejit.policy.model import Rule
from kubejit.server.audit_records import login_event
from kubejit.server.deps import Svc, Who
from kubejit.server.problems import AUTHENTICATED, COMMON, declare
from kubejit.server.schemas import ClusterOut, DevLoginIn, DevLoginOut, WhoAmIOut

router = APIRouter(prefix="/v1", tags=["identity"], responses=declare(*COMMON))


class LoginIssuerOut(BaseModel):
    name: str
    issuer_url: str
    client_id: str
    scopes: list[str]
    redirect_host: str


class LoginConfigOut(BaseModel):
    issuers: list[LoginIssuerOut]
    dev_issuer: bool


@router.get("/login-config", response_model=LoginConfigOut)
def login_config(svc: Svc) -> LoginConfigOut:
    """Where people log in (public: issuer URLs and public client ids, no secret); read by `kubejit login`."""
    return LoginConfigOut(
        issuers=[
            LoginIssuerOut(
                name=o.name,
                issuer_url=o.issuer_url,
                client_id=o.client_id,
                scopes=list(o.scopes),
                redirect_host=o.redirect_host,
            )
            for o in svc.login_offers
        ],
        dev_issuer=svc.dev_issuer is not None,
    )


@router.post("/dev/login", response_model=DevLoginOut, responses=declare(NotFound, PermissionDenied))
def dev_login(body: DevLoginIn, svc: Svc, request: Request) -> DevLoginOut:
    """Issue a token for a configured dev user (only when the dev issuer is enabled, only to loopback)."""
    if svc.dev_issuer is None:
        raise NotFound("the dev issuer is not enabled on this broker", hint="Log in with your IdP.")
    if not _direct_from_loopback(request):
        raise PermissionDenied(
            "the dev issuer serves only clients on the broker's own host, not through a proxy",
            hint="Run `kubejit login --dev-user NAME` on the broker's host against its loopback address.",
        )
    token = svc.dev_issuer.issue(body.user)
    svc.record([login_event(body.user, issuer="dev", at=svc.grants.clock.now())])
    return DevLoginOut(token=token, user=body.user)


#: Headers a reverse proxy adds: their presence means the client is not who the socket says.
_PROXY_HEADERS = ("forwarded", "x-real-ip", "x-forwarded-")


def _direct_from_loopback(request: Request) -> bool:
    """The dev issuer hands a token for anyone to whoever asks: only to a process on this host, directly.

    A proxy on the same host would make every remote client look like loopback, so any forwarding
    header refuses the request, whatever it says.
    """
    client = request.client.host if request.client else None
    forwarded = any(name.startswith(_PROXY_HEADERS) for name in request.headers)
    return is_loopback(client) and not forwarded


@router.get("/whoami", response_model=WhoAmIOut, responses=declare(*AUTHENTICATED))
def whoami(who: Who, svc: Svc) -> WhoAmIOut:
    rules = user_may_request(svc.grants.policy, who)
    return WhoAmIOut(
        name=who.name,
        groups=sorted(who.groups),
        issuer=who.issuer,
        admin=svc.grants.is_admin(who),
        may_request=[describe_rule(r, protected=svc.grants.policy.protected_namespaces) for r in rules],
    )


@router.get(
    "/clusters", response_model=list[ClusterOut], tags=["clusters"], responses=declare(*AUTHENTICATED)
)
def clusters(who: Who, svc: Svc) -> Sequence[ClusterOut]:
    return svc.clusters


def describe_rule(rule: Rule, *, protected: frozenset[str] = frozenset()) -> str:
    approval = "auto-approved" if rule.approvals_required == 0 else f"{rule.approvals_required} approver(s)"
    return (
        f"{rule.name}: {', '.join(rule.roles)} in {_where(rule, protected)} on "
        f"{', '.join(rule.clusters)}, up to {format_duration(rule.max_duration)}, {approval}"
    )


def _where(rule: Rule, protected: frozenset[str]) -> str:
    """The rule's namespaces; when a glob could seem to cover a protected one, say that it does not."""
    if not rule.namespaces:
        return "the whole cluster"
    shown = ", ".join(rule.namespaces)
    skipped = sorted(
        name
        for name in protected
        if name not in rule.namespaces and any(matches(p, name) for p in rule.namespaces if is_glob(p))
    )
    return f"{shown} (not {', '.join(skipped)})" if skipped else shown
