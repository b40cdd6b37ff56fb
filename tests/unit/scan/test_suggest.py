"""The suggested policy replaces standing people bindings, and `parse_policy` accepts it as it is."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubejit.clusters.scan.suggest import dns_label, suggest_policy
from kubejit.policy.load import parse_policy
from kubejit.policy.model import Policy
from tests.unit.scan.objects import BOOTSTRAP, crb, group, rb, role, rule, sa, snapshot, user

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def suggested(
    *bindings: dict[str, Any], cluster: str = "prod", roles: list[dict[str, Any]] | None = None
) -> tuple[str, Policy]:
    text = suggest_policy(snapshot(bindings=list(bindings), roles=roles), cluster=cluster, generated_at=NOW)
    return text, parse_policy(text, source="suggested.yaml")


def test_people_with_identical_access_share_one_rule() -> None:
    text, policy = suggested(
        rb("team-a", "devs-edit", "edit", group("devs"), user("alice")),
        rb("team-b", "devs-edit", "edit", group("devs"), user("alice")),
        crb("alice-admin", "cluster-admin", user("alice")),
    )
    assert set(policy.roles) == {"edit", "cluster-admin-cluster-wide"}
    assert policy.roles["cluster-admin-cluster-wide"].cluster_scope
    assert not policy.roles["edit"].cluster_scope
    by_role = {r.roles: r for r in policy.rules}
    edit = by_role["edit",]
    assert edit.users == {"alice"} and edit.groups == {"devs"}
    assert edit.namespaces == ("team-a", "team-b") and edit.clusters == ("prod",)
    assert edit.approvals_required == 1 and edit.require_reason
    admin = by_role["cluster-admin-cluster-wide",]
    assert admin.approvals_required == 2 and admin.max_duration.total_seconds() == 3600
    assert "# replaces ClusterRoleBinding alice-admin" in text
    assert "# replaces RoleBinding team-a/devs-edit" in text


def test_roles_keep_their_kind() -> None:
    _, policy = suggested(
        rb("team-a", "ops", "ops-role", user("bob"), kind="Role"),
        roles=[role("team-a", "ops-role", [rule(["get"], ["pods"])])],
    )
    assert policy.roles["ops-role"].kind == "Role"


def test_system_identities_service_accounts_and_defaults_are_left_out() -> None:
    text, policy = suggested(
        crb("cluster-admin", "cluster-admin", group("system:masters"), labels=BOOTSTRAP),
        crb("extra", "view", group("system:authenticated"), user("has space"), sa("ci", "robot")),
    )
    assert policy.rules == () and policy.roles == {}
    assert "# skipped: Group system:authenticated (ClusterRoleBinding extra)" in text
    assert "# skipped: User has space (ClusterRoleBinding extra)" in text
    assert "robot" not in text


def test_awkward_names_still_make_a_valid_policy() -> None:
    text, policy = suggested(
        crb("x", "Weird_Role:Name.v2", user("o'brien@example.com"), group("yes")),
        crb("y", "weird-role-name-v2", user("dev:zoë")),
        rb("kube-system", "z", "edit", group("on")),
        crb("evil\nrules: []", "view", user("mallory")),
        cluster="arn:aws:eks:eu-west-1:123:cluster/Prod",
    )
    assert len(policy.rules) == 4
    names = {r.name for r in policy.rules}
    assert len(names) == 4
    assert all(r.clusters == ("arn-aws-eks-eu-west-1-123-cluster-prod",) for r in policy.rules)
    assert {g for r in policy.rules for g in r.groups} == {"yes", "on"}  # quoted, not booleans
    assert any(r.namespaces == ("kube-system",) for r in policy.rules)
    assert "evil?rules" in text


def test_nothing_to_replace_is_still_a_valid_policy() -> None:
    text, policy = suggested()
    assert policy.rules == () and "nothing to replace" in text


def test_dns_labels() -> None:
    assert dns_label("System:Controller--X", fallback="r") == "system-controller-x"
    assert dns_label(":::", fallback="r") == "r"
    assert len(dns_label("a" * 100, fallback="r")) == 63


def test_bindings_in_kubejits_own_namespaces_are_skipped_not_suggested() -> None:
    text, policy = suggested(
        rb("kubejit", "ops-admin", "admin", user("alice")),
        rb("kubejit-grants", "ops-edit", "edit", group("ops")),
        rb("team-a", "alice-edit", "edit", user("alice")),
    )
    assert [r.namespaces for r in policy.rules] == [("team-a",)]
    assert "# skipped: RoleBinding kubejit/ops-admin (in kubejit's own namespace" in text
    assert "# skipped: RoleBinding kubejit-grants/ops-edit (in kubejit's own namespace" in text
