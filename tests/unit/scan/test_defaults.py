"""Kubernetes' own bindings and kubejit's grant bindings are recognised; look-alikes are not."""

from __future__ import annotations

from typing import Any

from kubejit.clusters.scan.defaults import (
    DEFAULT_BINDINGS,
    is_default_binding,
    is_kubejit_grant_binding,
    is_recognised,
)
from kubejit.clusters.scan.model import parse_binding, parse_role
from tests.unit.scan.objects import BOOTSTRAP, cluster_role, crb, group, rb, rule, sa, user

KUBEJIT = {"app.kubernetes.io/managed-by": "kubejit", "kubejit.io/grant": "g1a2b3"}


def binding(obj: dict[str, Any]) -> Any:
    return parse_binding("RoleBinding" if "namespace" in obj["metadata"] else "ClusterRoleBinding", obj)


def test_every_default_binding_of_the_table_is_recognised() -> None:
    for (namespace, name), (kind, role_name, subjects) in DEFAULT_BINDINGS.items():
        members = []
        for key in sorted(subjects):
            prefix, _, rest = key.partition(":")
            if prefix == "sa":
                ns, _, sa_name = rest.partition("/")
                members.append(sa(ns, sa_name))
            else:
                members.append({"kind": prefix.capitalize(), "name": rest})
        obj = rb(namespace, name, role_name, *members, kind=kind, labels=BOOTSTRAP) if namespace else None
        obj = obj or crb(name, role_name, *members, labels=BOOTSTRAP)
        assert is_default_binding(binding(obj)), name
    assert len(DEFAULT_BINDINGS) == 61


def test_adding_someone_to_a_default_binding_is_not_default_any_more() -> None:
    tampered = crb(
        "cluster-admin", "cluster-admin", group("system:masters"), user("mallory"), labels=BOOTSTRAP
    )
    assert not is_default_binding(binding(tampered))
    rebound = crb("system:basic-user", "cluster-admin", group("system:authenticated"), labels=BOOTSTRAP)
    assert not is_default_binding(binding(rebound))


def test_the_label_alone_proves_nothing() -> None:
    assert not is_default_binding(binding(crb("admins", "cluster-admin", user("alice"), labels=BOOTSTRAP)))
    assert not is_default_binding(binding(crb("cluster-admin", "cluster-admin", group("system:masters"))))


def test_defaults_of_other_versions_are_recognised_when_all_system() -> None:
    other = crb(
        "system:controller:new-thing",
        "system:controller:new-thing",
        sa("kube-system", "new-thing"),
        labels=BOOTSTRAP,
    )
    assert is_default_binding(binding(other))
    # ... but never when they reach every identity, or name someone else
    everyone = crb(
        "system:new-discovery", "system:new-discovery", group("system:authenticated"), labels=BOOTSTRAP
    )
    assert not is_default_binding(binding(everyone))
    outsider = crb("system:thing", "system:thing", sa("default", "robot"), labels=BOOTSTRAP)
    assert not is_default_binding(binding(outsider))


def test_jwt_mode_group_bindings_are_kubejits_only_for_their_own_grant_group() -> None:
    grant = rb("team-a", "kubejit-g1a2b3", "edit", group("kubejit:grant:g1a2b3"), labels=KUBEJIT)
    assert is_kubejit_grant_binding(binding(grant)) and is_recognised(binding(grant))
    other = rb("team-a", "kubejit-g1a2b3", "edit", group("kubejit:grant:g9"), labels=KUBEJIT)
    assert not is_kubejit_grant_binding(binding(other))
    wide = rb("team-a", "kubejit-g1a2b3", "edit", group("system:authenticated"), labels=KUBEJIT)
    assert not is_kubejit_grant_binding(binding(wide))
    unlabelled = rb("team-a", "kubejit-g1a2b3", "edit", group("kubejit:grant:g1a2b3"))
    assert not is_kubejit_grant_binding(binding(unlabelled))


def test_kubejit_grant_bindings_are_recognised_by_their_full_shape() -> None:
    grant = rb("team-a", "kubejit-g1a2b3", "edit", sa("kubejit-grants", "kubejit-g1a2b3"), labels=KUBEJIT)
    assert is_kubejit_grant_binding(binding(grant)) and is_recognised(binding(grant))
    forged = rb("team-a", "my-binding", "edit", user("mallory"), labels=KUBEJIT)
    assert not is_kubejit_grant_binding(binding(forged))
    extra = rb(
        "team-a", "kubejit-g1a2b3", "edit", sa("kubejit-grants", "kubejit-g1a2b3"), user("x"), labels=KUBEJIT
    )
    assert not is_kubejit_grant_binding(binding(extra))
    elsewhere = rb("team-a", "kubejit-g1a2b3", "admin", sa("team-a", "kubejit-g1a2b3"), labels=KUBEJIT)
    assert not is_kubejit_grant_binding(binding(elsewhere))
    moved = rb("team-a", "kubejit-g1a2b3", "edit", sa("jit", "kubejit-g1a2b3"), labels=KUBEJIT)
    assert not is_recognised(binding(moved)) and is_recognised(binding(moved), grant_namespace="jit")
    bad_id = {**KUBEJIT, "kubejit.io/grant": "NOT_AN_ID"}
    assert not is_kubejit_grant_binding(
        binding(
            rb("a", "kubejit-NOT_AN_ID", "edit", sa("kubejit-grants", "kubejit-NOT_AN_ID"), labels=bad_id)
        )
    )


def test_an_unknown_system_binding_that_grants_everything_is_no_default() -> None:
    other = crb("system:node-helper", "system:node-helper", sa("kube-system", "helper"), labels=BOOTSTRAP)
    everything = parse_role(
        "ClusterRole", cluster_role("system:node-helper", [rule(["*"], ["*"], ["*"])])
    ).rules
    assert is_default_binding(binding(other))  # judged by its names and subjects alone
    assert not is_default_binding(binding(other), everything)
    assert not is_recognised(binding(other), everything)
