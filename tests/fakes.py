"""In-memory fakes of kubejit's OWN ports (never of the Kubernetes API), for service unit tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from kubejit.errors import ClusterError, Conflict, NotFound
from kubejit.grants.model import Grant, GrantState
from kubejit.grants.ports import AuditEvent, MintedToken, OwnedObject
from kubejit.ids import ClusterName, GrantId, PrincipalName


class MemoryStore:
    def __init__(self) -> None:
        self.grants: dict[GrantId, Grant] = {}
        self.events: list[AuditEvent] = []
        self.tokens: list[tuple[GrantId, str, str]] = []

    def add(self, grant: Grant, events: Sequence[AuditEvent]) -> Grant:
        stored = replace(grant, version=1)
        self.grants[grant.id] = stored
        self.events.extend(events)
        return stored

    def save(self, grant: Grant, events: Sequence[AuditEvent]) -> Grant:
        if self.grants[grant.id].version != grant.version:
            raise Conflict("stale")
        stored = replace(grant, version=grant.version + 1)
        self.grants[grant.id] = stored
        self.events.extend(events)
        return stored

    def get(self, grant_id: GrantId) -> Grant:
        try:
            return self.grants[grant_id]
        except KeyError:
            raise NotFound(f"grant {grant_id} not found") from None

    def list(
        self,
        *,
        requester: PrincipalName | None = None,
        states: frozenset[GrantState] | None = None,
        cluster: ClusterName | None = None,
        limit: int = 100,
    ) -> list[Grant]:
        found = [
            g
            for g in self.grants.values()
            if (requester is None or g.requester == requester)
            and (states is None or g.state in states)
            and (cluster is None or g.cluster == cluster)
        ]
        return found[:limit]

    def due_for_expiry(self, now: datetime, *, limit: int = 500) -> list[Grant]:
        return [
            g
            for g in self.grants.values()
            if (g.state is GrantState.ACTIVE and g.expires_at and g.expires_at <= now)
            or (g.state is GrantState.PENDING and g.pending_until <= now)
        ][:limit]

    def record(self, events: Sequence[AuditEvent]) -> None:
        self.events.extend(events)

    def record_token(
        self,
        grant_id: GrantId,
        *,
        token_id: str,
        token_sha256: str,
        expires_at: datetime,
        events: Sequence[AuditEvent] = (),
    ) -> None:
        self.tokens.append((grant_id, token_id, token_sha256))
        self.events.extend(events)

    def get_with_tokens(self, grant_id: GrantId) -> tuple[Grant, int]:
        return self.get(grant_id), sum(1 for t in self.tokens if t[0] == grant_id)

    def count_by_state(self) -> dict[str, int]:
        return dict(Counter(str(g.state) for g in self.grants.values()))

    def actions(self) -> list[str]:
        return [e.action for e in self.events]


class FakeCluster:
    """Records what the service asks of a cluster; ``fail_with`` makes the next ensure fail."""

    def __init__(self, name: str = "dev") -> None:
        self.name = ClusterName(name)
        self.objects: dict[GrantId, list[OwnedObject]] = {}
        self.fail_with: ClusterError | None = None
        self.fail_delete: ClusterError | None = None
        #: ``list_owned`` raises it while set (the reconciler's view of an outage).
        self.fail_list: ClusterError | None = None
        #: ``expiration_seconds`` of every token minted, in order.
        self.minted_seconds: list[int] = []

    def ensure_grant_objects(self, grant: Grant) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        sa = OwnedObject("ServiceAccount", "kubejit-grants", grant.service_account, grant.id)
        bindings = [
            OwnedObject("RoleBinding", ns, f"kubejit-{grant.id}", grant.id) for ns in grant.namespaces
        ]
        self.objects[grant.id] = [sa, *bindings]

    def delete_grant_objects(self, grant_id: GrantId) -> None:
        if self.fail_delete is not None:
            raise self.fail_delete
        self.objects.pop(grant_id, None)

    def mint_token(self, grant: Grant, *, expiration_seconds: int) -> MintedToken:
        from datetime import UTC

        self.minted_seconds.append(expiration_seconds)
        return MintedToken(
            token=f"secret-token-{grant.id}",
            expires_at=datetime.now(UTC) + timedelta(seconds=expiration_seconds),
            token_id=f"jti-{grant.id}",
        )

    def list_owned(self) -> list[OwnedObject]:
        if self.fail_list is not None:
            raise self.fail_list
        return [o for objs in self.objects.values() for o in objs]
