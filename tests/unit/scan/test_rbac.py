"""RBAC evaluated offline: rule matching as the authorizer does it, aggregation, who-can, the matrix."""

from __future__ import annotations

import pytest

from kubejit.clusters.scan.model import ObjectRef, Subject, parse_rule
from kubejit.clusters.scan.rbac import RbacIndex, ResourceRequest, matrix, rule_allows, subject_can, who_can
from kubejit.clusters.scan.resources import ResourceName, parse_resource
from tests.unit.scan.objects import (
    cluster_role,
    crb,
    group,
    rb,
    role,
    rule,
    sa,
    snapshot,
    user,
)

PODS = ResourceName("", "pods")


def ask(verb: str, resource: str, namespace: str = "", name: str = "") -> ResourceRequest:
    return ResourceRequest(verb, parse_resource(resource), namespace, name)


@pytest.mark.parametrize(
    ("policy_rule", "request_", "allowed"),
    [
        (rule(["get"], ["pods"]), ask("get", "pods"), True),
        (rule(["get"], ["pods"]), ask("list", "pods"), False),
        (rule(["*"], ["pods"]), ask("delete", "pods"), True),
        (rule(["get"], ["*"]), ask("get", "secrets"), True),
        (rule(["get"], ["*"]), ask("get", "deployments.apps"), False),  # apiGroups [""] only
        (rule(["get"], ["*"], ["*"]), ask("get", "deployments.apps"), True),
        (rule(["get"], ["deployments"], ["apps"]), ask("get", "deployments.apps"), True),
        (rule(["get"], ["deployments"], ["extensions"]), ask("get", "deployments.apps"), False),
        # a subresource is its own resource: pods does not cover pods/exec ...
        (rule(["create"], ["pods"]), ask("create", "pods/exec"), False),
        (rule(["create"], ["pods/exec"]), ask("create", "pods/exec"), True),
        # ... except through "*" or "*/subresource"
        (rule(["create"], ["*"]), ask("create", "pods/exec"), True),
        (rule(["get"], ["*/status"]), ask("get", "pods/status"), True),
        (rule(["get"], ["*/status"]), ask("get", "pods"), False),
        # resourceNames: only named objects, never an unnamed request (list, or create)
        (rule(["get"], ["secrets"], resourceNames=["a"]), ask("get", "secrets", name="a"), True),
        (rule(["get"], ["secrets"], resourceNames=["a"]), ask("get", "secrets", name="b"), False),
        (rule(["get"], ["secrets"], resourceNames=["a"]), ask("get", "secrets"), False),
        ({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}, ask("get", "pods"), False),
    ],
)
def test_rule_matching_follows_the_authorizer(
    policy_rule: dict[str, object], request_: ResourceRequest, allowed: bool
) -> None:
    assert rule_allows(parse_rule(policy_rule), request_) is allowed


def test_aggregated_cluster_roles_are_resolved_from_their_selectors() -> None:
    snap = snapshot(
        cluster_roles=[
            cluster_role("reader", [rule(["get"], ["pods"])], labels={"agg/read": "true"}),
            cluster_role("writer", [rule(["create"], ["pods"])], labels={"agg/write": "true"}),
            # `both` aggregates `read-all` which itself aggregates: chains resolve
            cluster_role("read-all", [], labels={"agg/both": "true"}, aggregate=[{"agg/read": "true"}]),
            cluster_role("both", [], aggregate=[{"agg/both": "true"}, {"agg/write": "true"}]),
        ]
    )
    index = RbacIndex(snap)
    granted = index.rules_of(ObjectRef("ClusterRole", "both"))
    assert {next(iter(r.verbs)) for r in granted} == {"get", "create"}


def test_aggregation_keeps_stored_rules_and_survives_cycles() -> None:
    snap = snapshot(
        cluster_roles=[
            cluster_role("a", [rule(["get"], ["pods"])], labels={"x": "a"}, aggregate=[{"x": "b"}]),
            cluster_role("b", [rule(["list"], ["pods"])], labels={"x": "b"}, aggregate=[{"x": "a"}]),
        ]
    )
    index = RbacIndex(snap)
    assert {next(iter(r.verbs)) for r in index.rules_of(ObjectRef("ClusterRole", "a"))} == {"get", "list"}


def test_missing_role_grants_nothing() -> None:
    snap = snapshot(bindings=[crb("dangling", "no-such-role", user("alice"))])
    assert who_can(RbacIndex(snap), ask("get", "pods")) == []


def test_who_can_counts_role_bindings_only_in_their_namespace() -> None:
    snap = snapshot(
        roles=[role("team-a", "pod-reader", [rule(["get"], ["pods"])])],
        bindings=[
            rb("team-a", "readers", "pod-reader", group("devs"), kind="Role"),
            rb("team-a", "editors", "edit", sa("ci", "deployer")),
            crb("admins", "cluster-admin", user("root")),
        ],
    )
    index = RbacIndex(snap)
    in_a = {str(a.subject) for a in who_can(index, ask("get", "pods", "team-a"))}
    assert in_a == {"Group devs", "ServiceAccount ci/deployer", "User root"}
    assert {str(a.subject) for a in who_can(index, ask("get", "pods", "team-b"))} == {"User root"}
    # no namespace: a cluster-wide question, answered by ClusterRoleBindings only
    assert {str(a.subject) for a in who_can(index, ask("get", "pods"))} == {"User root"}
    assert subject_can(index, Subject("ServiceAccount", "deployer", "ci"), ask("delete", "pods", "team-a"))
    assert not subject_can(index, Subject("Group", "devs"), ask("delete", "pods", "team-a"))


def test_who_can_names_the_binding_and_role() -> None:
    snap = snapshot(bindings=[rb("team-a", "editors", "edit", user("bob"))])
    (access,) = who_can(RbacIndex(snap), ask("get", "secrets", "team-a"))
    assert access.binding == ObjectRef("RoleBinding", "editors", "team-a")
    assert access.role == ObjectRef("ClusterRole", "edit")


def test_service_account_subject_without_namespace_is_the_bindings_own() -> None:
    snap = snapshot(bindings=[rb("team-a", "x", "view", {"kind": "ServiceAccount", "name": "robot"})])
    (access,) = who_can(RbacIndex(snap), ask("get", "pods", "team-a"))
    assert access.subject == Subject("ServiceAccount", "robot", "team-a")
    assert access.subject.username == "system:serviceaccount:team-a:robot"


def test_matrix_lists_each_subjects_verbs_per_resource() -> None:
    snap = snapshot(
        bindings=[
            rb("team-a", "viewers", "view", group("readers")),
            rb("team-a", "editors", "edit", group("readers"), user("eve")),
            rb("team-b", "elsewhere", "edit", user("mallory")),
        ]
    )
    table = matrix(RbacIndex(snap), "team-a", resources=[PODS, ResourceName("", "secrets")])
    assert table.cells[Subject("Group", "readers")]["pods"] == (
        "get",
        "list",
        "watch",
        "create",
        "update",
        "delete",
    )
    assert table.cells[Subject("User", "eve")]["secrets"] == ("get", "list", "create", "update", "delete")
    assert Subject("User", "mallory") not in table.cells
    skipped = matrix(RbacIndex(snap), "team-a", resources=[PODS], skip=lambda b: b.ref.name == "editors")
    assert skipped.cells == {Subject("Group", "readers"): {"pods": ("get", "list", "watch")}}
