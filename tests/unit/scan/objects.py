"""RBAC objects as the API returns them (plain dicts), for the scanner's unit tests."""

from __future__ import annotations

from typing import Any

from kubejit.clusters.scan.model import Snapshot, snapshot_from_objects

RBAC = "rbac.authorization.k8s.io"
BOOTSTRAP = {"kubernetes.io/bootstrapping": "rbac-defaults"}


def user(name: str) -> dict[str, Any]:
    return {"kind": "User", "name": name, "apiGroup": RBAC}


def group(name: str) -> dict[str, Any]:
    return {"kind": "Group", "name": name, "apiGroup": RBAC}


def sa(namespace: str, name: str) -> dict[str, Any]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def rule(
    verbs: list[str], resources: list[str], groups: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {"verbs": verbs, "apiGroups": [""] if groups is None else groups, "resources": resources, **extra}


def meta(
    name: str, namespace: str = "", labels: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    found: dict[str, Any] = {"name": name, **extra}
    if namespace:
        found["namespace"] = namespace
    if labels:
        found["labels"] = labels
    return found


def cluster_role(
    name: str,
    rules: list[dict[str, Any]] | None = None,
    *,
    labels: dict[str, str] | None = None,
    aggregate: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    found: dict[str, Any] = {"metadata": meta(name, labels=labels), "rules": rules or []}
    if aggregate is not None:
        found["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": s} for s in aggregate]}
    return found


def role(namespace: str, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": meta(name, namespace), "rules": rules}


def crb(
    name: str, role_name: str, *subjects: dict[str, Any], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "metadata": meta(name, labels=labels),
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role_name},
        "subjects": list(subjects),
    }


def rb(
    namespace: str,
    name: str,
    role_name: str,
    *subjects: dict[str, Any],
    kind: str = "ClusterRole",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": meta(name, namespace, labels=labels),
        "roleRef": {"apiGroup": RBAC, "kind": kind, "name": role_name},
        "subjects": list(subjects),
    }


CLUSTER_ADMIN = cluster_role(
    "cluster-admin",
    [rule(["*"], ["*"], ["*"]), {"verbs": ["*"], "nonResourceURLs": ["*"]}],
    labels=BOOTSTRAP,
)
EDIT = cluster_role(
    "edit", [rule(["get", "list", "create", "update", "delete"], ["pods", "secrets", "configmaps"])]
)
VIEW = cluster_role("view", [rule(["get", "list", "watch"], ["pods", "configmaps"])])


def snapshot(
    *,
    cluster_roles: list[dict[str, Any]] | None = None,
    roles: list[dict[str, Any]] | None = None,
    bindings: list[dict[str, Any]] | None = None,
    secrets: list[dict[str, Any]] | None = None,
) -> Snapshot:
    """Bindings with a namespace are RoleBindings; the usual cluster roles are always there."""
    found = bindings or []
    return snapshot_from_objects(
        "test",
        cluster_roles=[CLUSTER_ADMIN, EDIT, VIEW, *(cluster_roles or [])],
        roles=roles or [],
        cluster_role_bindings=[b for b in found if "namespace" not in b["metadata"]],
        role_bindings=[b for b in found if "namespace" in b["metadata"]],
        token_secrets=secrets or [],
    )
