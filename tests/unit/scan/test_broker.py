"""kubejit's own broker RBAC, exactly as deploy/rbac.yaml makes it, is no finding; a widened one is."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import yaml

from kubejit.clusters.bootstrap import rbac_manifest
from kubejit.clusters.scan.broker import BROKER_SUBJECT, shipped_broker_bindings
from kubejit.clusters.scan.findings import ScanOptions, scan
from kubejit.clusters.scan.model import RBAC_GROUP, Snapshot, snapshot_from_objects
from tests.unit.scan.objects import CLUSTER_ADMIN, rule, sa, user

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ALL_NAMESPACES = ScanOptions(
    managed_namespaces=frozenset({"kubejit", "kubejit-grants"}),
    privileged_namespaces=frozenset({"kube-system", "kubejit", "kubejit-grants"}),
)


def manifest_objects() -> list[dict[str, Any]]:
    """The active documents of deploy/rbac.yaml, plus its optional cluster-scope pair uncommented."""
    active, _, optional = rbac_manifest().partition("# OPTIONAL")
    commented = optional.partition("\n# ---\n")[2]
    uncommented = "\n".join(line[2:] for line in commented.splitlines())
    return [doc for text in (active, uncommented) for doc in yaml.safe_load_all(text) if doc]


def broker_snapshot(edit: Any = None, *, admission_readable: bool = True) -> Snapshot:
    """The manifest as listed from a cluster; ``admission_readable=False``: the scanning identity may
    not list admission policies."""
    objects = manifest_objects()
    if edit is not None:
        edit({(o["kind"], o["metadata"]["name"]): o for o in objects})
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    return snapshot_from_objects(
        "test",
        cluster_roles=[CLUSTER_ADMIN, *by_kind["ClusterRole"]],
        roles=by_kind["Role"],
        cluster_role_bindings=by_kind["ClusterRoleBinding"],
        role_bindings=by_kind["RoleBinding"],
        admission_policies=by_kind["ValidatingAdmissionPolicy"] if admission_readable else None,
        admission_bindings=by_kind["ValidatingAdmissionPolicyBinding"] if admission_readable else None,
    )


def reported(snap: Snapshot) -> set[tuple[str, str]]:
    return {(f.rule, str(f.object)) for f in scan(snap, now=NOW, options=ALL_NAMESPACES).findings}


def test_the_manifest_has_three_broker_bindings_the_optional_one_included() -> None:
    shipped = shipped_broker_bindings()
    assert set(shipped) == {
        ("RoleBinding", "kubejit-broker"),
        ("ClusterRoleBinding", "kubejit-broker"),
        ("ClusterRoleBinding", "kubejit-broker-cluster-scope"),
    }
    assert all(b.rules for b in shipped.values())
    assert BROKER_SUBJECT.username == "system:serviceaccount:kubejit:kubejit-broker"


def test_the_broker_rbac_as_shipped_is_no_finding() -> None:
    snap = broker_snapshot()
    assert len(snap.bindings) == 3
    assert reported(snap) == set()


def test_naming_other_roles_to_bind_is_what_operators_do_and_stays_silent() -> None:
    def edit(objects: dict[tuple[str, str], Any]) -> None:
        role = objects["ClusterRole", "kubejit-broker"]
        role["rules"][2]["resourceNames"] = ["view", "edit", "admin", "payments-operator"]
        role["rules"].append(rule(["bind"], ["roles"], [RBAC_GROUP], resourceNames=["deployer"]))

    assert reported(broker_snapshot(edit)) == set()


def _widened(change: Any) -> set[tuple[str, str]]:
    return reported(broker_snapshot(change))


def test_a_widened_broker_role_is_reported() -> None:
    def bind_anything(objects: dict[tuple[str, str], Any]) -> None:
        objects["ClusterRole", "kubejit-broker"]["rules"][2]["resourceNames"] = ["*"]

    def bind_every_role(objects: dict[tuple[str, str], Any]) -> None:
        del objects["ClusterRole", "kubejit-broker"]["rules"][2]["resourceNames"]

    def read_secrets(objects: dict[tuple[str, str], Any]) -> None:
        objects["ClusterRole", "kubejit-broker"]["rules"].append(rule(["get"], ["secrets"]))

    def escalate(objects: dict[tuple[str, str], Any]) -> None:
        bind = copy.deepcopy(objects["ClusterRole", "kubejit-broker"]["rules"][2])
        objects["ClusterRole", "kubejit-broker"]["rules"].append({**bind, "verbs": ["bind", "escalate"]})

    for change in (bind_anything, bind_every_role, read_secrets, escalate):
        assert ("escalation-path", "ClusterRoleBinding kubejit-broker") in _widened(change), change.__name__


def test_other_subjects_or_roles_on_a_broker_binding_are_reported() -> None:
    def add_user(objects: dict[tuple[str, str], Any]) -> None:
        objects["ClusterRoleBinding", "kubejit-broker"]["subjects"].append(user("mallory"))

    def other_account(objects: dict[tuple[str, str], Any]) -> None:
        objects["RoleBinding", "kubejit-broker"]["subjects"] = [sa("default", "kubejit-broker")]

    def cluster_admin(objects: dict[tuple[str, str], Any]) -> None:
        objects["ClusterRoleBinding", "kubejit-broker-cluster-scope"]["roleRef"]["name"] = "cluster-admin"

    assert ("user-binding", "ClusterRoleBinding kubejit-broker") in _widened(add_user)
    assert ("unmanaged-binding", "RoleBinding kubejit-grants/kubejit-broker") in _widened(other_account)
    assert ("cluster-admin", "ClusterRoleBinding kubejit-broker-cluster-scope") in _widened(cluster_admin)


# -- the broker's RBAC without the admission policies it is never safe without ----------------------
GUARDS = {"kubejit-grant-limits", "kubejit-broker-bindings"}


def _guards(snap: Snapshot) -> set[str]:
    return {f.object.name for f in scan(snap, now=NOW).findings if f.rule == "kubejit-guard-missing"}


def test_a_broker_without_one_of_its_admission_policies_is_reported() -> None:
    def no_grant_limits(objects: dict[tuple[str, str], Any]) -> None:  # its binding names another
        objects["ValidatingAdmissionPolicyBinding", "kubejit-grant-limits"]["spec"]["policyName"] = "other"

    def warn_only(objects: dict[tuple[str, str], Any]) -> None:
        objects["ValidatingAdmissionPolicyBinding", "kubejit-broker-bindings"]["spec"][
            "validationActions"
        ] = ["Warn"]

    def no_policies(objects: dict[tuple[str, str], Any]) -> None:
        for name in GUARDS:
            objects["ValidatingAdmissionPolicy", name]["metadata"]["name"] = f"not-{name}"

    assert _guards(broker_snapshot(no_grant_limits)) == {"kubejit-grant-limits"}
    assert _guards(broker_snapshot(warn_only)) == {"kubejit-broker-bindings"}
    assert _guards(broker_snapshot(no_policies)) == GUARDS
    (finding,) = [f for f in scan(broker_snapshot(no_grant_limits), now=NOW).findings]
    assert finding.severity == "high"
    assert (
        finding.object.path
        == "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/kubejit-grant-limits"
    )
    assert "admission policy kubejit-grant-limits has no binding that enforces it" in finding.message
    assert "kubejit-broker-bindings is missing" in next(
        f.message
        for f in scan(broker_snapshot(no_policies), now=NOW).findings
        if f.object.name == "kubejit-broker-bindings"
    )


def test_the_guards_are_not_checked_where_they_could_not_be_read_or_no_broker_is_installed() -> None:
    unreadable = broker_snapshot(admission_readable=False)
    assert unreadable.admission is None and _guards(unreadable) == set()
    nothing_installed = snapshot_from_objects("test", admission_policies=[], admission_bindings=[])
    assert _guards(nothing_installed) == set()
