"""The Kubernetes objects of one grant, built as data (no I/O), so they are unit-tested by value.

``adapter.py`` only sends what these builders return. Every object carries the ownership labels,
which is how the reconciler finds (and removes) what a crash left behind, and how deletion finds a
grant's bindings without trusting anything but the label.
"""

from __future__ import annotations

import re

from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.core_v1 import ServiceAccount, ServiceAccountToken
from lightkube.resources.rbac_authorization_v1 import ClusterRoleBinding, RoleBinding

from kubejit.errors import InvalidInput
from kubejit.grants.model import Grant
from kubejit.identity.cluster_tokens import grant_group
from kubejit.ids import GrantId

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubejit"
GRANT_LABEL = "kubejit.io/grant"
#: The name kubejit's writes are recorded under (metadata.managedFields, audit log).
FIELD_MANAGER = "kubejit"
RBAC_API_GROUP = "rbac.authorization.k8s.io"
#: The API server refuses TokenRequests shorter than ten minutes.
MIN_TOKEN_SECONDS = 600
#: A reason is free text from a user; an annotation needs only enough of it to say why.
MAX_REASON_CHARS = 512

# A grant id becomes a label value and part of object names: a DNS label of at most 55 characters
# leaves room for the "kubejit-" prefix within the 63 characters both allow.
_GRANT_ID = re.compile(r"[a-z0-9]([-a-z0-9]{0,53}[a-z0-9])?")

Binding = RoleBinding | ClusterRoleBinding


def object_name(grant_id: GrantId) -> str:
    """The name of every object of a grant; the same as ``Grant.service_account``."""
    _check_grant_id(grant_id)
    return f"kubejit-{grant_id}"


def ownership_labels(grant_id: GrantId) -> dict[str, str]:
    """Labels that mark an object as kubejit's and tie it to one grant."""
    _check_grant_id(grant_id)
    return {MANAGED_BY_LABEL: MANAGED_BY, GRANT_LABEL: grant_id}


def managed_selector() -> dict[str, str]:
    """Label selector for everything kubejit owns in a cluster."""
    return {MANAGED_BY_LABEL: MANAGED_BY}


def grant_annotations(grant: Grant) -> dict[str, str]:
    """Who asked, why and until when: readable by anyone inspecting the cluster, never a secret."""
    notes = {
        "kubejit.io/requester": grant.requester,
        "kubejit.io/reason": truncate(grant.reason, MAX_REASON_CHARS),
        "kubejit.io/rule": grant.rule,
        "kubejit.io/role": grant.role.name,
    }
    if grant.ticket:
        notes["kubejit.io/ticket"] = grant.ticket
    if grant.expires_at is not None:
        notes["kubejit.io/expires-at"] = grant.expires_at.isoformat()
    return notes


def service_account_for(grant: Grant, *, namespace: str) -> ServiceAccount:
    """The grant's own identity, in the broker's grant namespace (never in a granted namespace)."""
    return ServiceAccount(
        metadata=_metadata(grant, namespace=namespace),
        # The account exists for tokens kubejit mints, never to be mounted into pods.
        automountServiceAccountToken=False,
    )


def role_bindings_for(grant: Grant, *, sa_namespace: str) -> list[Binding]:
    """One RoleBinding per granted namespace, or one ClusterRoleBinding when the role says so."""
    subject = Subject(kind="ServiceAccount", name=object_name(grant.id), namespace=sa_namespace)
    return _bindings_for(grant, subject)


def group_role_bindings_for(grant: Grant) -> list[Binding]:
    """jwt mode: the same bindings, whose subject is the grant's own group (no ServiceAccount)."""
    _check_grant_id(grant.id)
    return _bindings_for(grant, Subject(kind="Group", name=grant_group(grant.id), apiGroup=RBAC_API_GROUP))


def _bindings_for(grant: Grant, subject: Subject) -> list[Binding]:
    role_ref = RoleRef(apiGroup=RBAC_API_GROUP, kind=grant.role.kind, name=grant.role.ref_name)
    if grant.role.cluster_scope:
        if grant.role.kind != "ClusterRole":
            raise InvalidInput(
                f"role '{grant.role.name}' is cluster-scoped but refers to a Role, not a ClusterRole",
                hint="A ClusterRoleBinding can only refer to a ClusterRole: fix the role in the policy.",
            )
        return [ClusterRoleBinding(metadata=_metadata(grant), roleRef=role_ref, subjects=[subject])]
    if not grant.namespaces:
        raise InvalidInput(
            f"grant {grant.id} names no namespace",
            hint="Request at least one namespace, or use a cluster-scoped role.",
        )
    return [
        RoleBinding(metadata=_metadata(grant, namespace=ns), roleRef=role_ref, subjects=[subject])
        for ns in dict.fromkeys(grant.namespaces)  # keeps order, drops repeats
    ]


def token_request_for(grant: Grant, *, audience: str | None, expiration_seconds: int) -> ServiceAccountToken:
    """A TokenRequest for the grant's account; ``audience`` None means the API server's own audiences."""
    if expiration_seconds < MIN_TOKEN_SECONDS:
        raise InvalidInput(
            f"a token must live at least {MIN_TOKEN_SECONDS} seconds, not {expiration_seconds}",
            hint="Kubernetes refuses shorter TokenRequests; kubejit revokes earlier by deleting the account.",
        )
    return ServiceAccountToken(
        metadata=ObjectMeta(name=object_name(grant.id)),
        spec=TokenRequestSpec(
            audiences=[audience] if audience else [],
            expirationSeconds=expiration_seconds,
        ),
    )


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _metadata(grant: Grant, *, namespace: str | None = None) -> ObjectMeta:
    return ObjectMeta(
        name=object_name(grant.id),
        namespace=namespace,
        labels=ownership_labels(grant.id),
        annotations=grant_annotations(grant),
    )


def is_grant_id(value: str) -> bool:
    """Whether ``value`` could be a grant id kubejit made (a label anyone could have set is not trusted)."""
    return _GRANT_ID.fullmatch(value) is not None


def _check_grant_id(grant_id: str) -> None:
    if not is_grant_id(grant_id):
        raise InvalidInput(
            f"grant id {grant_id!r} cannot name Kubernetes objects",
            hint="Grant ids are lower-case letters, digits and '-', at most 55 characters.",
        )
