"""Each finding rule, with its severity, on literal RBAC objects; defaults and kubejit grants stay silent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubejit.clusters.scan.findings import RULES, Finding, ScanOptions, Severity, scan
from kubejit.clusters.scan.model import ObjectRef, Snapshot
from tests.unit.scan.objects import BOOTSTRAP, cluster_role, crb, group, rb, role, rule, sa, snapshot, user

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def found(snap: Snapshot, **options: Any) -> set[tuple[str, Severity, str]]:
    report = scan(snap, now=NOW, options=ScanOptions(**options))
    return {(f.rule, f.severity, str(f.object)) for f in report.findings}


def only(snap: Snapshot, rule_id: str) -> list[Finding]:
    return [f for f in scan(snap, now=NOW).findings if f.rule == rule_id]


def test_nothing_to_report_on_defaults_only() -> None:
    snap = snapshot(
        bindings=[crb("cluster-admin", "cluster-admin", group("system:masters"), labels=BOOTSTRAP)]
    )
    assert scan(snap, now=NOW).findings == ()


def test_cluster_admin_binding_to_a_user() -> None:
    snap = snapshot(bindings=[crb("alice-admin", "cluster-admin", user("alice"))])
    assert found(snap) == {
        ("cluster-admin", Severity.HIGH, "ClusterRoleBinding alice-admin"),
        ("user-binding", Severity.MEDIUM, "ClusterRoleBinding alice-admin"),
    }


def test_cluster_admin_in_one_namespace_is_medium_except_in_privileged_ones() -> None:
    snap = snapshot(
        bindings=[
            rb("team-a", "ns-admin", "cluster-admin", sa("team-a", "robot")),
            rb("kube-system", "sys-admin", "cluster-admin", sa("team-a", "robot")),
        ]
    )
    severities = {(f.rule, str(f.object)): f.severity for f in scan(snap, now=NOW).findings}
    assert severities["cluster-admin", "RoleBinding team-a/ns-admin"] is Severity.MEDIUM
    assert severities["cluster-admin", "RoleBinding kube-system/sys-admin"] is Severity.HIGH


def test_a_role_equivalent_to_cluster_admin_counts_as_cluster_admin() -> None:
    snap = snapshot(
        cluster_roles=[cluster_role("superuser", [rule(["*"], ["*"], ["*"])])],
        bindings=[crb("su", "superuser", sa("ops", "robot"))],
    )
    assert found(snap) == {("cluster-admin", Severity.HIGH, "ClusterRoleBinding su")}


def test_wildcard_rules() -> None:
    snap = snapshot(
        cluster_roles=[cluster_role("pods-all", [rule(["*"], ["pods"])])],
        roles=[role("team-a", "anything-read", [rule(["get"], ["*"])])],
        bindings=[
            crb("wide", "pods-all", group("ops")),
            rb("team-a", "local", "anything-read", user("bob"), kind="Role"),
        ],
    )
    result = found(snap)
    assert ("wildcard-rule", Severity.HIGH, "ClusterRoleBinding wide") in result
    assert ("wildcard-rule", Severity.MEDIUM, "RoleBinding team-a/local") in result


def test_people_bindings_and_groups_that_reach_everyone() -> None:
    snap = snapshot(
        bindings=[
            rb("team-a", "devs-view", "view", group("devs"), user("carol")),
            crb("sre-view", "view", group("sre")),
            crb("everyone-view", "view", group("system:authenticated")),
            crb("anonymous-view", "view", user("system:anonymous")),
        ]
    )
    assert found(snap) == {
        ("group-binding", Severity.LOW, "RoleBinding team-a/devs-view"),
        ("user-binding", Severity.LOW, "RoleBinding team-a/devs-view"),
        ("group-binding", Severity.MEDIUM, "ClusterRoleBinding sre-view"),
        ("group-binding", Severity.HIGH, "ClusterRoleBinding everyone-view"),
        ("user-binding", Severity.HIGH, "ClusterRoleBinding anonymous-view"),
    }
    (finding,) = only(snap, "user-binding")[:1]
    assert finding.subjects and finding.role == ObjectRef("ClusterRole", "view")


def test_service_accounts_with_cluster_wide_write() -> None:
    snap = snapshot(
        cluster_roles=[
            cluster_role("cm-writer", [rule(["update"], ["configmaps"])]),
            cluster_role("reviewer", [rule(["create"], ["tokenreviews", "subjectaccessreviews"], ["*"])]),
        ],
        bindings=[
            crb("writer", "cm-writer", sa("ci", "robot")),
            crb("all-accounts", "cm-writer", group("system:serviceaccounts:ci")),
            crb("reads", "view", sa("ci", "reader")),
            crb("auth-delegator", "reviewer", sa("ci", "proxy")),  # reviews are questions, not writes
            rb("ci", "local-write", "cm-writer", sa("ci", "robot")),  # one namespace only
        ],
    )
    writes = {str(f.object) for f in only(snap, "sa-cluster-write")}
    assert writes == {"ClusterRoleBinding writer", "ClusterRoleBinding all-accounts"}
    assert all(f.severity is Severity.HIGH for f in only(snap, "sa-cluster-write"))


def test_escalation_paths() -> None:
    snap = snapshot(
        cluster_roles=[
            cluster_role("binder", [rule(["bind"], ["clusterroles"], ["rbac.authorization.k8s.io"])]),
            cluster_role(
                "named-binder",
                [
                    rule(
                        ["bind"],
                        ["clusterroles"],
                        ["rbac.authorization.k8s.io"],
                        resourceNames=["view", "edit"],
                    )
                ],
            ),
            cluster_role("impersonator", [rule(["impersonate"], ["users", "groups"])]),
            cluster_role("pod-maker", [rule(["create"], ["pods"])]),
            cluster_role("secret-reader", [rule(["get", "list"], ["secrets"])]),
        ],
        bindings=[
            crb("bind-any", "binder", user("u1")),
            crb("bind-some", "named-binder", sa("kubejit", "broker")),
            crb("impersonate", "impersonator", sa("ops", "robot")),
            rb("kube-system", "pods-in-kube-system", "pod-maker", sa("ops", "robot")),
            rb("team-a", "pods-in-team-a", "pod-maker", sa("ops", "robot")),
            crb("secrets-everywhere", "secret-reader", sa("ops", "robot")),
            rb("team-a", "local-binder", "binder", user("u2")),
        ],
    )
    paths = {str(f.object): f for f in only(snap, "escalation-path")}
    assert paths["ClusterRoleBinding bind-any"].severity is Severity.HIGH
    assert paths["ClusterRoleBinding bind-some"].severity is Severity.MEDIUM
    assert "only edit, view" in paths["ClusterRoleBinding bind-some"].message
    assert paths["ClusterRoleBinding impersonate"].severity is Severity.HIGH
    assert "impersonate users, groups" in paths["ClusterRoleBinding impersonate"].message
    assert paths["RoleBinding kube-system/pods-in-kube-system"].severity is Severity.HIGH
    assert "create pods in kube-system" in paths["RoleBinding kube-system/pods-in-kube-system"].message
    assert "RoleBinding team-a/pods-in-team-a" not in paths
    assert "read secrets in kube-system" in paths["ClusterRoleBinding secrets-everywhere"].message
    assert paths["RoleBinding team-a/local-binder"].severity is Severity.MEDIUM


def test_privileged_namespaces_are_configurable() -> None:
    snap = snapshot(
        cluster_roles=[cluster_role("pod-maker", [rule(["create"], ["pods"])])],
        bindings=[rb("payments", "pods", "pod-maker", sa("ops", "robot"))],
    )
    assert not only(snap, "escalation-path")
    result = found(snap, privileged_namespaces=frozenset({"kube-system", "payments"}))
    assert ("escalation-path", Severity.HIGH, "RoleBinding payments/pods") in result


def test_cluster_admin_is_not_repeated_as_escalation_or_write() -> None:
    snap = snapshot(bindings=[crb("robot-admin", "cluster-admin", sa("ops", "robot"))])
    assert {f.rule for f in scan(snap, now=NOW).findings} == {"cluster-admin"}


def test_bindings_kubejit_did_not_make_in_managed_namespaces() -> None:
    grant_labels = {"app.kubernetes.io/managed-by": "kubejit", "kubejit.io/grant": "g42"}
    snap = snapshot(
        bindings=[
            rb("payments", "kubejit-g42", "edit", sa("kubejit-grants", "kubejit-g42"), labels=grant_labels),
            rb("payments", "legacy", "view", sa("payments", "app")),
            rb("payments", "forged", "view", sa("payments", "app"), labels=grant_labels),
            rb("other", "legacy", "view", sa("other", "app")),
        ]
    )
    result = found(snap, managed_namespaces=frozenset({"payments"}))
    unmanaged = {obj for rule_id, _, obj in result if rule_id == "unmanaged-binding"}
    assert unmanaged == {"RoleBinding payments/legacy", "RoleBinding payments/forged"}
    assert all(sev is Severity.MEDIUM for rule_id, sev, _ in result if rule_id == "unmanaged-binding")
    assert not any("kubejit-g42" in obj for _, _, obj in result)


def test_legacy_token_secrets_with_their_age() -> None:
    created = (NOW - timedelta(days=400)).isoformat()
    secrets: list[dict[str, Any]] = [
        {
            "metadata": {
                "name": "robot-token",
                "namespace": "ci",
                "creationTimestamp": created,
                "annotations": {"kubernetes.io/service-account.name": "robot"},
            }
        },
        {"metadata": {"name": "mystery", "namespace": "ci"}},
    ]
    tokens = only(snapshot(secrets=secrets), "legacy-token")
    by_name = {f.object.name: f for f in tokens}
    assert by_name["robot-token"].age_days == 400 and by_name["robot-token"].severity is Severity.MEDIUM
    assert "created 400 days ago" in by_name["robot-token"].message
    assert by_name["robot-token"].object.path == "/api/v1/namespaces/ci/secrets/robot-token"
    assert by_name["mystery"].age_days is None and "age unknown" in by_name["mystery"].message


def test_report_orders_by_severity_and_gates() -> None:
    snap = snapshot(
        bindings=[rb("team-a", "devs", "view", group("devs")), crb("root", "cluster-admin", user("r"))]
    )
    report = scan(snap, now=NOW)
    ranks = [f.severity.rank for f in report.findings]
    assert ranks == sorted(ranks, reverse=True)
    assert report.summary() == {"high": 1, "medium": 1, "low": 1}
    assert len(report.at_or_above(Severity.HIGH)) == 1
    assert len(report.at_or_above(Severity.LOW)) == 3
    assert report.counts["clusterrolebindings"] == 1 and report.counts["rolebindings"] == 1


def test_every_rule_is_described() -> None:
    for info in RULES.values():
        assert info.title and info.help and info.phrase


def test_a_system_looking_binding_that_grants_everything_is_no_default() -> None:
    """All-`system:` names pass for another version's default, unless the role grants everything."""
    disguised = [
        cluster_role("system:node-helper", [rule(["*"], ["*"], ["*"])]),
        cluster_role("system:controller:new-thing", [rule(["get"], ["pods"])]),
    ]
    bindings = [
        crb("system:node-helper", "system:node-helper", sa("kube-system", "helper"), labels=BOOTSTRAP),
        crb(
            "system:controller:new-thing",
            "system:controller:new-thing",
            sa("kube-system", "new-thing"),
            labels=BOOTSTRAP,
        ),
    ]
    snap = snapshot(cluster_roles=disguised, bindings=bindings)
    assert found(snap) == {("cluster-admin", Severity.HIGH, "ClusterRoleBinding system:node-helper")}
