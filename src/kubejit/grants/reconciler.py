"""Reconciliation: what the store says must exist in a cluster, against what kubejit owns there.

``diff`` is pure; the grant service applies its actions. It repairs the two ways a crash can leave a
cluster: objects of a grant that has ended (deleted), and missing objects of a live grant (restored).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from kubejit.grants.model import Grant, GrantState
from kubejit.grants.ports import OwnedObject
from kubejit.ids import GrantId


class ActionKind(StrEnum):
    DELETE = "delete"  # objects of a grant that is not live
    RESTORE = "restore"  # an active grant lost some of its objects
    ACTIVATE = "activate"  # an approved grant whose activation was interrupted


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    grant_id: GrantId
    grant: Grant | None = None


def _complete(grant: Grant, owned: list[OwnedObject], *, service_accounts: bool) -> bool:
    kinds = {o.kind for o in owned}
    if service_accounts and "ServiceAccount" not in kinds:
        return False
    if grant.role.cluster_scope:
        return "ClusterRoleBinding" in kinds
    bound = {o.namespace for o in owned if o.kind == "RoleBinding"}
    return set(grant.namespaces) <= bound


def diff(
    live: Iterable[Grant], owned: Iterable[OwnedObject], *, service_accounts: bool = True
) -> list[Action]:
    """Actions that make a cluster hold exactly the objects of its live grants (``service_accounts``
    False: a jwt-mode cluster, where a grant is complete with its bindings)."""
    by_grant: dict[GrantId, list[OwnedObject]] = defaultdict(list)
    for obj in owned:
        by_grant[obj.grant_id].append(obj)
    live_by_id = {g.id: g for g in live}
    actions = [Action(ActionKind.DELETE, gid) for gid in sorted(by_grant) if gid not in live_by_id]
    for gid, grant in sorted(live_by_id.items()):
        if grant.state is GrantState.APPROVED:
            actions.append(Action(ActionKind.ACTIVATE, gid, grant))
        elif not _complete(grant, by_grant.get(gid, []), service_accounts=service_accounts):
            actions.append(Action(ActionKind.RESTORE, gid, grant))
    return actions
