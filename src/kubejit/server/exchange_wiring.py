"""Build CI/CD token exchange from settings: one OIDC verifier per workload issuer, the spent-jti ledger.

Checked at start, so a mistake stops the broker instead of refusing the first pipeline: every
workload rule must name a configured workload issuer of its own kind, and no workload issuer may
share its name (its principals' prefix) or its URL with an issuer of people.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from kubejit.clock import Clock
from kubejit.config import Settings, WorkloadIssuerSettings
from kubejit.errors import ConfigError, PolicyError
from kubejit.grants.exchange import SpentTokenIds, WorkloadExchange, WorkloadIssuer
from kubejit.grants.service import GrantService
from kubejit.identity.claims import ClaimMapping
from kubejit.identity.discovery import JwksCache
from kubejit.identity.oidc import OIDCIssuer, OIDCVerifier
from kubejit.policy.model import Policy

HTTP_TIMEOUT_SECONDS = 5.0


def build_exchange(
    settings: Settings, *, grants: GrantService, spent: SpentTokenIds, clock: Clock
) -> tuple[WorkloadExchange | None, Callable[[], None]]:
    """The exchange (None without workload issuers) and what closes its HTTP clients."""
    check_workload_setup(settings, grants.policy)
    if not settings.workload_issuers:
        return None, lambda: None
    clients: list[httpx.Client] = []
    issuers = []
    for s in settings.workload_issuers:
        http = httpx.Client(
            timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False, headers={"user-agent": "kubejit-broker"}
        )
        clients.append(http)
        keys = JwksCache(s.issuer_url, http=http, min_refresh_seconds=s.jwks_min_refresh_seconds)
        verifier = OIDCVerifier(_oidc_issuer(s), keys=keys, clock=clock)
        issuers.append(WorkloadIssuer(name=s.name, url=s.issuer_url, audience=s.audience, verifier=verifier))

    def close() -> None:
        for client in clients:
            client.close()

    return WorkloadExchange(grants=grants, issuers=issuers, spent=spent), close


def _oidc_issuer(s: WorkloadIssuerSettings) -> OIDCIssuer:
    return OIDCIssuer(
        url=s.issuer_url,
        audience=s.audience,
        # Unused for workloads (identity.workload names them), but the verifier's type asks for one.
        mapping=ClaimMapping(issuer_name=s.name, prefix=f"{s.name}:"),
        required_claims=("jti",),
        leeway_seconds=s.leeway_seconds,
    )


def check_workload_setup(settings: Settings, policy: Policy) -> None:
    kinds = {s.name: s.kind for s in settings.workload_issuers}
    for rule in policy.workloads:
        kind = kinds.get(rule.issuer)
        if kind is None:
            raise PolicyError(
                f"{rule.source}: workload rule '{rule.name}' names the issuer '{rule.issuer}', "
                "which is not configured",
                hint=f"Add it under workloadIssuers: in the broker config (known: {', '.join(kinds) or 'none'}).",
            )
        if kind != rule.provider:
            raise PolicyError(
                f"{rule.source}: workload rule '{rule.name}' matches {rule.provider} claims, "
                f"but the issuer '{rule.issuer}' is of kind {kind}",
                hint="Use the claims key of the issuer's kind (github:, gitlab: or claims:).",
            )
    prefixes = {i.effective_prefix for i in settings.identity.issuers}
    urls = {i.issuer_url for i in settings.identity.issuers}
    for s in settings.workload_issuers:
        mine = f"{s.name}:"
        # 'github:' and a people prefix 'github:repo:' collide too: a person could be named like a job.
        clash = next((p for p in sorted(prefixes) if p.startswith(mine) or mine.startswith(p)), None)
        if clash is not None:
            same = "the same prefix as" if clash == mine else f"a prefix overlapping '{clash}' of"
            raise ConfigError(
                f"workload issuer '{s.name}' has {same} an issuer of people",
                hint="Rename one: principals of two issuers must never collide.",
            )
        if s.issuer_url in urls:
            raise ConfigError(
                f"{s.issuer_url} is configured for people and for workloads",
                hint="A job token must never pass as a person's login: trust an issuer for one or the other.",
            )
