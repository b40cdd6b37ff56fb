"""Token exchange for CI/CD workloads: a job's OIDC token in, an active short grant and its token out.

Sequence: pick the workload issuer by the token's (unverified) ``iss`` → that issuer verifies it
(signature, algorithm, exp/nbf/iat) with its EXACT audience → the ``jti`` is spent (replay refused) →
policy's workload rules decide → ``GrantService`` creates and activates the grant (ServiceAccount,
RoleBindings, audit, expiry as for people) → a TokenRequest token is minted. Every refusal is audited
and creates nothing in any cluster. The jti is spent before policy is asked, so a refused token
cannot be retried either; a pipeline fetches a fresh job token instead.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from kubejit.errors import AuthenticationFailed, KubejitError, RequestDenied
from kubejit.grants.model import Grant
from kubejit.grants.ports import AuditEvent, MintedToken
from kubejit.grants.service import GrantService
from kubejit.identity.principal import Principal
from kubejit.identity.workload import audit_claims, workload_principal
from kubejit.policy.workloads import WorkloadTarget

log = logging.getLogger(__name__)

#: A spent jti is remembered this long past the token's exp (covers the verifier's leeway).
REPLAY_MARGIN = timedelta(minutes=5)
MAX_JTI_LENGTH = 256


class JobTokenVerifier(Protocol):
    """Verifies a token of one issuer (``identity.oidc.OIDCVerifier`` in the broker)."""

    def verify(self, token: str, *, audience: str | None = None) -> dict[str, Any]: ...


class SpentTokenIds(Protocol):
    """Remembers exchanged token ids (``store.seen_tokens.SqlSeenTokenIds`` in the broker)."""

    def first_use(
        self,
        *,
        issuer: str,
        jti: str,
        keep_until: datetime,
        now: datetime,
        events: Sequence[AuditEvent] = (),
    ) -> bool: ...


@dataclass(frozen=True)
class WorkloadIssuer:
    #: Its name in config and policy, and the prefix of its principals (``github:repo:...``).
    name: str
    #: Exactly the ``iss`` of its tokens.
    url: str
    #: Exactly the ``aud`` its tokens must carry for this broker (nothing else, no list of several).
    audience: str
    verifier: JobTokenVerifier


@dataclass(frozen=True)
class Exchanged:
    grant: Grant
    token: MintedToken
    principal: Principal


class WorkloadExchange:
    def __init__(
        self, *, grants: GrantService, issuers: Sequence[WorkloadIssuer], spent: SpentTokenIds
    ) -> None:
        self.grants = grants
        self._by_url = {issuer.url: issuer for issuer in issuers}
        self._spent = spent

    def exchange(self, subject_token: str, target: WorkloadTarget, *, client: Mapping[str, Any]) -> Exchanged:
        """``client`` (source IP, user agent) goes into the audit records of refusals."""
        principal = self.authenticate(subject_token, client=client)
        try:
            grant = self.grants.request_workload(principal, target)
        except RequestDenied:
            raise  # audited by the grant service, with the claims
        except KubejitError as exc:
            self._refused(exc, client=client, issuer=principal.issuer, principal=principal)
            raise
        try:
            token = self.grants.issue_token(principal, grant.id)
        except KubejitError as exc:
            # Nobody holds a token for this grant and the jti is spent: end it rather than leave
            # a ServiceAccount and RoleBindings standing until it expires.
            self._refused(exc, client=client, issuer=principal.issuer, principal=principal)
            try:
                self.grants.revoke(principal, grant.id, reason="token exchange failed: no token was issued")
            except KubejitError as cleanup:  # the grant still expires on time; the first error matters
                log.warning("could not end grant %s after a failed exchange: %s", grant.id, cleanup.message)
            raise
        return Exchanged(grant=grant, token=token, principal=principal)

    def authenticate(self, token: str, *, client: Mapping[str, Any]) -> Principal:
        """Verify the job token and spend its jti; every failure is audited, then raised (401)."""
        issuer: WorkloadIssuer | None = None
        try:
            issuer = self._issuer_of(token)
            claims = issuer.verifier.verify(token, audience=issuer.audience)
            _check_exact_audience(claims, issuer.audience)
            principal = workload_principal(issuer.name, claims)
            jti, expires = _jti_and_expiry(claims)
            now = self.grants.clock.now()
            accepted = AuditEvent(
                action="token_exchange.accepted",
                actor=principal.name,
                at=now,
                subject=principal.name,
                details={"issuer": issuer.name, "claims": audit_claims(principal), **client},
            )
            if not self._spent.first_use(
                issuer=issuer.url, jti=jti, keep_until=expires + REPLAY_MARGIN, now=now, events=[accepted]
            ):
                raise AuthenticationFailed(
                    "the job token was already exchanged (its jti was seen before): replay refused",
                    hint="Fetch a fresh job token for each exchange.",
                )
            return principal
        except AuthenticationFailed as exc:
            if exc.hint == AuthenticationFailed.default_hint:  # "log in again" means nothing to a pipeline
                exc.hint = "Exchange a fresh job token issued for this broker's audience (docs/ci.md)."
            self._refused(exc, client=client, issuer=issuer.name if issuer else None)
            raise

    def _issuer_of(self, token: str) -> WorkloadIssuer:
        iss = _unverified_issuer(token)
        found = self._by_url.get(iss) if iss else None
        if found is None:
            raise AuthenticationFailed(
                "the subject token's issuer is not a workload issuer this broker trusts",
                hint="Configure it under workloadIssuers: in the broker config (docs/ci.md).",
            )
        return found

    def _refused(
        self,
        exc: KubejitError,
        *,
        client: Mapping[str, Any],
        issuer: str | None,
        principal: Principal | None = None,
    ) -> None:
        details: dict[str, Any] = {"error": exc.message, "code": exc.code, "issuer": issuer, **client}
        if principal is not None:
            details["claims"] = audit_claims(principal)
        name = principal.name if principal else "anonymous"
        event = AuditEvent(
            action="token_exchange.refused",
            actor=name,
            at=self.grants.clock.now(),
            outcome="failure",
            subject=principal.name if principal else None,
            details=details,
        )
        self.grants.audit.record([event])


def _unverified_issuer(token: str) -> str | None:
    """The ``iss`` a token claims, only to choose whose keys verify it (the verifier checks it again)."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > 16 * 1024:
        raise AuthenticationFailed("the subject token is not a JWT")
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise AuthenticationFailed("the subject token is not a JWT") from exc
    iss = payload.get("iss") if isinstance(payload, dict) else None
    return iss if isinstance(iss, str) else None


def _check_exact_audience(claims: Mapping[str, Any], audience: str) -> None:
    """``aud`` must be this broker's audience and nothing else: a token minted for several parties is
    one another party could replay here."""
    aud = claims.get("aud")
    if aud != audience and aud != [audience]:
        raise AuthenticationFailed(
            "the job token's audience is not exactly this broker's",
            hint=f"Request the job token with audience {audience!r} only.",
        )


def _jti_and_expiry(claims: Mapping[str, Any]) -> tuple[str, datetime]:
    jti, exp = claims.get("jti"), claims.get("exp")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise AuthenticationFailed(
            "the job token has no usable jti claim, so its replay could not be refused",
            hint="Use the CI system's OIDC job token (GitHub Actions and GitLab CI set jti).",
        )
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise AuthenticationFailed("the job token has no exp claim")
    return jti, datetime.fromtimestamp(exp, tz=UTC)
