"""A cluster in jwt mode: the grant is RoleBindings to its own group, the credential kubejit's JWT.

No ServiceAccount and no TokenRequest: the cluster trusts kubejit as a JWT issuer
(``--authentication-config``, docs/jwt-mode.md), the token names the person and carries only the
grant's group, so the API server's audit log names who it was. Ending a grant deletes the bindings,
and RBAC refuses the group at once; the token itself dies within its short lifetime. Everything
else (idempotent creates, conflict checks, undo on failure, the reconciler's listing) is the
ServiceAccount mode's, inherited.
"""

from __future__ import annotations

from collections.abc import Mapping

from lightkube import Client
from lightkube.resources.core_v1 import ServiceAccount

from kubejit.clusters.adapter import KubeClusterAdapter, KubeObject
from kubejit.clusters.objects import group_role_bindings_for
from kubejit.grants.model import Grant
from kubejit.grants.ports import MintedToken
from kubejit.identity.cluster_tokens import ClusterTokenIssuer


class JwtClusterAdapter(KubeClusterAdapter):
    """Group bindings in the cluster, and tokens signed by the broker for this cluster's audience."""

    uses_service_accounts = False

    def __init__(
        self,
        name: str,
        *,
        client: Client,
        grant_namespace: str,
        audience: str,
        issuer: ClusterTokenIssuer,
    ) -> None:
        super().__init__(name, client=client, grant_namespace=grant_namespace, audience=audience)
        self.jwt_audience = audience
        self._issuer = issuer

    def _wanted(self, grant: Grant) -> list[KubeObject]:
        return list(group_role_bindings_for(grant))

    def mint_token(self, grant: Grant, *, expiration_seconds: int) -> MintedToken:
        """A JWT for this cluster only, naming the grant's requester; never past the grant's end.

        ``expiration_seconds`` is the ServiceAccount mode's bound (at least ten minutes, the
        TokenRequest minimum): here the configured lifetime, usually shorter, decides.
        """
        self._check_cluster(grant)
        minted = self._issuer.mint(
            subject=grant.requester, grant_id=grant.id, audience=self.jwt_audience, not_after=grant.expires_at
        )
        return MintedToken(token=minted.token, expires_at=minted.expires_at, token_id=minted.jti)

    def _list_service_accounts(self, selector: Mapping[str, str]) -> list[ServiceAccount]:
        """None: jwt mode creates no ServiceAccounts (and the broker may not list them there)."""
        return []
