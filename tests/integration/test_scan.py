"""`kubejit scan` and `who-can` against a real kube-apiserver seeded with known-bad RBAC.

Every seeded finding is reported with its severity (and nothing else about the seeded objects); a
fresh cluster of our own reports nothing; who-can agrees with the API server's own
SubjectAccessReview for every seeded subject; Secret data never reaches any output; bad input is one
`Error:` line and a hint. The session cluster is shared with other tests, so every object seeded here
has a unique name, nothing is granted outside this test's namespaces to anyone who exists elsewhere,
and everything is removed at the end.
"""

from __future__ import annotations

import functools
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lightkube import ApiError, Client, codecs
from lightkube.models.authorization_v1 import ResourceAttributes, SubjectAccessReviewSpec
from lightkube.resources.admissionregistration_v1 import ValidatingAdmissionPolicyBinding
from lightkube.resources.authorization_v1 import SubjectAccessReview
from lightkube.resources.rbac_authorization_v1 import ClusterRole
from lightkube.types import PatchType

from kubejit.clusters.scan.broker import BROKER_SUBJECT
from kubejit.clusters.scan.fetch import fetch_snapshot, load_config
from kubejit.clusters.scan.findings import ScanOptions, ScanReport, scan
from kubejit.clusters.scan.model import Snapshot, Subject
from kubejit.clusters.scan.rbac import RbacIndex, ResourceRequest, subject_can
from kubejit.clusters.scan.resources import parse_resource
from kubejit.policy.load import parse_policy
from kubejit.testing import clients
from kubejit.testing.controlplane import ControlPlane, ControlPlaneBinaries
from kubejit.testing.rbac_aggregation import aggregated_rules
from tests.broker_identity import set_up_broker
from tests.polling import poll
from tests.unit.scan.objects import cluster_role, crb, group, rb, role, rule, sa, user

pytestmark = pytest.mark.integration

KUBEJIT = Path(sys.executable).parent / "kubejit"
FINDINGS_EXIT = 20
RBAC_PROPAGATION_SECONDS = 15.0  # the authorizer reads bindings from an informer cache
RBAC_V1 = "rbac.authorization.k8s.io/v1"


@dataclass(frozen=True)
class Seeded:
    sfx: str
    team: str  # a namespace kubejit "manages"
    vault: str  # a namespace declared privileged, like kube-system
    kubeconfig: Path
    subjects: tuple[Subject, ...]
    expected: frozenset[tuple[str, str, str]]  # (rule, severity, object)
    marker: str  # stands for token data: must never be read, so never printed

    @property
    def options(self) -> ScanOptions:
        return ScanOptions(
            managed_namespaces=frozenset({self.team}),
            privileged_namespaces=frozenset({"kube-system", self.vault}),
        )

    def mine(self, report: ScanReport) -> set[tuple[str, str, str]]:
        return {
            (f.rule, f.severity.value, str(f.object))
            for f in report.findings
            if self.sfx in f.object.name or self.sfx in f.object.namespace
        }


def _typed(kind: str, api_version: str, obj: dict[str, Any]) -> Any:
    """A lightkube object from its dict (typed Any: lightkube's overloads cannot follow ``from_dict``)."""
    return codecs.from_dict({"apiVersion": api_version, "kind": kind, **obj})


def _objects(sfx: str, team: str, vault: str, marker: str) -> list[Any]:
    """The known-bad RBAC, in creation order (namespaces and accounts first)."""
    agg_label = {f"scan.kubejit.io/agg-{sfx}": "true"}
    grant = f"g{sfx}"
    grant_labels = {"app.kubernetes.io/managed-by": "kubejit", "kubejit.io/grant": grant}
    lookalike_labels = {**grant_labels, "kubejit.io/grant": f"h{sfx}"}
    token = {
        "metadata": {
            "name": "builder-token",
            "namespace": team,
            "annotations": {
                "kubernetes.io/service-account.name": "builder",
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps({"data": {"token": marker}}),
            },
        },
        "type": "kubernetes.io/service-account-token",
        "stringData": {"token": marker},
    }
    cluster_roles = [
        cluster_role(f"scan-{sfx}-wild", [rule(["*"], ["configmaps"])]),
        cluster_role(f"scan-{sfx}-cm-writer", [rule(["update"], ["configmaps"])]),
        cluster_role(f"scan-{sfx}-binder", [rule(["bind"], ["clusterroles"], ["rbac.authorization.k8s.io"])]),
        cluster_role(f"scan-{sfx}-impersonator", [rule(["impersonate"], ["users", "groups"])]),
        cluster_role(f"scan-{sfx}-escalator", [rule(["escalate"], ["roles"], ["rbac.authorization.k8s.io"])]),
        cluster_role(f"scan-{sfx}-secret-reader", [rule(["get", "list"], ["secrets"])]),
        cluster_role(f"scan-{sfx}-agg", [], aggregate=[agg_label]),
        cluster_role(f"scan-{sfx}-agg-part", [rule(["get", "list"], ["secrets"])], labels=agg_label),
    ]
    cluster_bindings = [
        crb(f"scan-{sfx}-alice-admin", "cluster-admin", user(f"alice-{sfx}")),
        crb(f"scan-{sfx}-wild", f"scan-{sfx}-wild", group(f"ops-{sfx}")),
        crb(f"scan-{sfx}-cm-writer", f"scan-{sfx}-cm-writer", sa(team, "deployer")),
        crb(f"scan-{sfx}-binder", f"scan-{sfx}-binder", user(f"bob-{sfx}")),
        crb(f"scan-{sfx}-impersonator", f"scan-{sfx}-impersonator", sa(team, "robot")),
        crb(f"scan-{sfx}-escalator", f"scan-{sfx}-escalator", user(f"dave-{sfx}")),
    ]
    bindings = [
        rb(team, "devs-edit", "edit", group(f"devs-{sfx}")),
        rb(team, "auditors", f"scan-{sfx}-agg", group(f"auditors-{sfx}")),
        rb(team, "everyone-view", "view", group("system:authenticated")),
        rb(team, f"kubejit-{grant}", "view", sa("kubejit-grants", f"kubejit-{grant}"), labels=grant_labels),
        rb(team, "forged", "view", user(f"mallory-{sfx}"), labels=grant_labels),
        # kubejit's name and labels, but the account is not in kubejit's grant namespace
        rb(team, f"kubejit-h{sfx}", "edit", sa(team, f"kubejit-h{sfx}"), labels=lookalike_labels),
        rb(vault, "carol-secrets", f"scan-{sfx}-secret-reader", user(f"carol-{sfx}")),
        rb("kube-system", f"scan-{sfx}-pod-maker", f"scan-{sfx}-pod-maker", sa(team, "robot"), kind="Role"),
    ]
    return [
        *(_typed("Namespace", "v1", {"metadata": {"name": ns}}) for ns in (team, vault)),
        *(
            _typed("ServiceAccount", "v1", {"metadata": {"name": n, "namespace": team}})
            for n in ("builder", "robot")
        ),
        _typed("Secret", "v1", token),
        *(_typed("ClusterRole", RBAC_V1, obj) for obj in cluster_roles),
        _typed("Role", RBAC_V1, role("kube-system", f"scan-{sfx}-pod-maker", [rule(["create"], ["pods"])])),
        *(_typed("ClusterRoleBinding", RBAC_V1, obj) for obj in cluster_bindings),
        *(_typed("RoleBinding", RBAC_V1, obj) for obj in bindings),
    ]


def _expected(sfx: str, team: str, vault: str) -> frozenset[tuple[str, str, str]]:
    crb_ = f"ClusterRoleBinding scan-{sfx}"
    return frozenset(
        {
            ("cluster-admin", "high", f"{crb_}-alice-admin"),
            ("user-binding", "medium", f"{crb_}-alice-admin"),
            ("wildcard-rule", "high", f"{crb_}-wild"),
            ("group-binding", "medium", f"{crb_}-wild"),
            ("sa-cluster-write", "high", f"{crb_}-cm-writer"),
            ("escalation-path", "high", f"{crb_}-binder"),
            ("user-binding", "medium", f"{crb_}-binder"),
            ("escalation-path", "high", f"{crb_}-impersonator"),
            ("escalation-path", "high", f"{crb_}-escalator"),
            ("user-binding", "medium", f"{crb_}-escalator"),
            ("escalation-path", "high", f"RoleBinding kube-system/scan-{sfx}-pod-maker"),
            ("escalation-path", "high", f"RoleBinding {vault}/carol-secrets"),
            ("user-binding", "low", f"RoleBinding {vault}/carol-secrets"),
            ("group-binding", "low", f"RoleBinding {team}/devs-edit"),
            ("escalation-path", "medium", f"RoleBinding {team}/devs-edit"),  # edit may impersonate SAs
            ("unmanaged-binding", "medium", f"RoleBinding {team}/devs-edit"),
            ("group-binding", "low", f"RoleBinding {team}/auditors"),
            ("unmanaged-binding", "medium", f"RoleBinding {team}/auditors"),
            ("group-binding", "high", f"RoleBinding {team}/everyone-view"),
            ("unmanaged-binding", "medium", f"RoleBinding {team}/everyone-view"),
            ("user-binding", "low", f"RoleBinding {team}/forged"),
            ("unmanaged-binding", "medium", f"RoleBinding {team}/forged"),
            ("legacy-token", "medium", f"Secret {team}/builder-token"),
            ("escalation-path", "medium", f"RoleBinding {team}/kubejit-h{sfx}"),
            ("unmanaged-binding", "medium", f"RoleBinding {team}/kubejit-h{sfx}"),
        }
    )


def _delete(admin: Client, obj: Any) -> None:
    meta = obj.metadata
    assert meta is not None and meta.name is not None
    try:
        if meta.namespace:
            admin.delete(type(obj), meta.name, namespace=meta.namespace)
        else:
            admin.delete(type(obj), meta.name)
    except ApiError as e:
        if e.status.code != 404:
            raise


def _fill_my_aggregation(admin: Client, sfx: str) -> None:
    """Do what kube-controller-manager's aggregation controller would, for this test's role only."""
    roles = [r.to_dict() for r in admin.list(ClusterRole)]
    for name, rules in aggregated_rules(roles).items():
        if sfx in name:
            admin.patch(ClusterRole, name, {"rules": rules}, patch_type=PatchType.MERGE)


@pytest.fixture(scope="module")
def seeded(control_plane: ControlPlane) -> Iterator[Seeded]:
    sfx = secrets.token_hex(3)
    team, vault = f"scan-team-{sfx}", f"scan-vault-{sfx}"
    marker = f"TOKEN-DATA-{secrets.token_hex(8)}"
    objects = _objects(sfx, team, vault, marker)
    admin = clients.admin_client(control_plane)
    created: list[Any] = []
    try:
        for obj in objects:
            admin.create(obj)
            created.append(obj)
        subjects = {
            Subject(s["kind"], s["name"], s.get("namespace", ""))
            for obj in objects
            for s in (obj.to_dict().get("subjects") or [])
        }
        yield Seeded(
            sfx,
            team,
            vault,
            control_plane.kubeconfig_path,
            tuple(sorted(subjects)),
            _expected(sfx, team, vault),
            marker,
        )
    finally:
        for obj in reversed(created):
            _delete(admin, obj)
        admin.close()


def _snapshot(kubeconfig: Path) -> Snapshot:
    return fetch_snapshot(load_config(str(kubeconfig)))


def kubejit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KUBEJIT), *args], capture_output=True, text=True, check=False)


def test_every_seeded_finding_is_reported_with_its_severity(seeded: Seeded) -> None:
    report = scan(_snapshot(seeded.kubeconfig), now=datetime.now(UTC), options=seeded.options)
    assert seeded.mine(report) == seeded.expected


def test_the_cli_reports_the_same_and_gates_on_severity(seeded: Seeded, tmp_path: Path) -> None:
    flags = ["--kubeconfig", str(seeded.kubeconfig), "--managed-namespace", seeded.team]
    flags += ["--privileged-namespace", seeded.vault]
    result = kubejit("scan", *flags, "-o", "json", "--fail-on", "high")
    assert result.returncode == FINDINGS_EXIT, result.stderr
    document = json.loads(result.stdout)
    assert document["kind"] == "ScanReport"
    reported = {
        (
            f["rule"],
            f["severity"],
            f"{f['object']['kind']} {f['object']['namespace'] + '/' if f['object']['namespace'] else ''}{f['object']['name']}",
        )
        for f in document["data"]["findings"]
        if seeded.sfx in f["object"]["name"] or seeded.sfx in (f["object"]["namespace"] or "")
    }
    assert reported == seeded.expected
    for output in ("sarif", "html"):
        out = tmp_path / f"scan.{output}"
        written = kubejit("scan", *flags, "-o", output, "--out", str(out))
        assert written.returncode == 0, written.stderr
        assert f"scan-{seeded.sfx}-alice-admin" in out.read_text()
    sarif = json.loads((tmp_path / "scan.sarif").read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]


def test_secret_data_never_reaches_any_output(seeded: Seeded, tmp_path: Path) -> None:
    snapshot = _snapshot(seeded.kubeconfig)
    assert seeded.marker not in repr(snapshot)
    for output in ("table", "json", "sarif", "html"):
        result = kubejit("scan", "--kubeconfig", str(seeded.kubeconfig), "-o", output)
        assert result.returncode == 0, result.stderr
        assert seeded.marker not in result.stdout + result.stderr
    listed = kubejit("scan", "--kubeconfig", str(seeded.kubeconfig), "-o", "json")
    assert "builder-token" in listed.stdout and seeded.marker not in listed.stdout


def test_suggested_policy_replaces_the_people_bindings(seeded: Seeded) -> None:
    result = kubejit("scan", "--kubeconfig", str(seeded.kubeconfig), "--suggest-policy")
    assert result.returncode == 0, result.stderr
    policy = parse_policy(result.stdout, source="suggested.yaml")
    users = {u for r in policy.rules for u in r.users}
    groups = {g for r in policy.rules for g in r.groups}
    assert {
        f"alice-{seeded.sfx}",
        f"bob-{seeded.sfx}",
        f"carol-{seeded.sfx}",
        f"mallory-{seeded.sfx}",
    } <= users
    assert {f"devs-{seeded.sfx}", f"ops-{seeded.sfx}", f"auditors-{seeded.sfx}"} <= groups
    assert "system:authenticated" not in groups


#: Every seeded subject is asked every verb on every resource in every namespace (and cluster-wide).
_VERBS = ("get", "list", "watch", "create", "update", "delete", "bind", "escalate", "impersonate")
_RESOURCES = (
    "pods",
    "pods/exec",
    "secrets",
    "configmaps",
    "serviceaccounts/token",
    "deployments.apps",
    "clusterroles.rbac.authorization.k8s.io",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "users",
    "groups",
)
_NAMESPACES = ("team", "vault", "kube-system", "")


def _sar(admin: Client, subject: Subject, request: ResourceRequest, probe_user: str) -> bool:
    if subject.kind == "Group":
        who: dict[str, Any] = {"user": probe_user, "groups": [subject.name]}
    else:
        who = {"user": subject.username}
    attributes = ResourceAttributes(
        verb=request.verb,
        group=request.resource.group,
        resource=request.resource.resource,
        subresource=request.resource.subresource or None,
        namespace=request.namespace or None,
    )
    review = SubjectAccessReview(spec=SubjectAccessReviewSpec(resourceAttributes=attributes, **who))
    answer = admin.create(review)
    assert answer.status is not None
    return bool(answer.status.allowed)


def _sar_answers(
    admin: Client, subject: Subject, questions: list[ResourceRequest], probe_user: str
) -> list[bool]:
    return [_sar(admin, subject, q, probe_user) for q in questions]


def test_who_can_agrees_with_subject_access_review(seeded: Seeded, admin_client: Client) -> None:
    index = RbacIndex(_snapshot(seeded.kubeconfig))
    namespaces = {"team": seeded.team, "vault": seeded.vault, "kube-system": "kube-system", "": ""}
    questions = [
        ResourceRequest(verb, parse_resource(resource), namespaces[ns])
        for verb in _VERBS
        for resource in _RESOURCES
        for ns in _NAMESPACES
    ]
    # Our scanner resolved the aggregated role from its selector; the API server needs the controller.
    auditors = Subject("Group", f"auditors-{seeded.sfx}")
    assert subject_can(index, auditors, ResourceRequest("get", parse_resource("secrets"), seeded.team))
    _fill_my_aggregation(admin_client, seeded.sfx)
    probe_user = f"probe-{seeded.sfx}"
    mine = [s for s in seeded.subjects if s.kind != "Group" or not s.name.startswith("system:")]
    assert len(mine) >= 10
    subjects = [*mine, Subject("Group", "system:authenticated")]
    allowed_somewhere = 0
    for subject in subjects:
        ours = [subject_can(index, subject, q) for q in questions]
        ask_server = functools.partial(_sar_answers, admin_client, subject, questions, probe_user)
        theirs = poll(ask_server, ours.__eq__, within=RBAC_PROPAGATION_SECONDS)
        differ = [(str(q), o, t) for q, o, t in zip(questions, ours, theirs, strict=True) if o != t]
        assert not differ, f"{subject} (question, who-can, SubjectAccessReview): {differ}"
        allowed_somewhere += any(ours)
    assert allowed_somewhere == len(subjects)  # every seeded subject can do something...
    assert not all(subject_can(index, s, q) for s in subjects for q in questions)  # ...but not all


def test_who_can_cli(seeded: Seeded) -> None:
    result = kubejit(
        "who-can", "get", "secrets", "-n", seeded.vault, "--kubeconfig", str(seeded.kubeconfig), "-o", "json"
    )
    assert result.returncode == 0, result.stderr
    access = json.loads(result.stdout)["data"]["access"]
    subjects = {(a["subject"]["kind"], a["subject"]["name"]) for a in access}
    assert ("User", f"carol-{seeded.sfx}") in subjects and ("User", f"alice-{seeded.sfx}") in subjects
    assert ("Group", "system:masters") in subjects
    assert any(a["default"] for a in access) and not all(a["default"] for a in access)
    matrix = kubejit(
        "who-can", "--matrix", "-n", seeded.team, "--kubeconfig", str(seeded.kubeconfig), "-o", "json"
    )
    assert matrix.returncode == 0, matrix.stderr
    rows = {row["subject"]["name"]: row["access"] for row in json.loads(matrix.stdout)["data"]["subjects"]}
    assert rows[f"devs-{seeded.sfx}"]["secrets"] == [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
    ]
    assert rows[f"auditors-{seeded.sfx}"] == {"secrets": ["get", "list"]}
    assert "system:masters" not in rows  # Kubernetes' own bindings only with --include-defaults
    table = kubejit("who-can", "--matrix", "-n", seeded.team, "--kubeconfig", str(seeded.kubeconfig))
    assert table.returncode == 0 and f"auditors-{seeded.sfx}" in table.stdout


def test_a_fresh_cluster_reports_nothing_even_with_the_broker_installed(
    control_plane_binaries: ControlPlaneBinaries, tmp_path: Path
) -> None:
    """Its own control plane: the shared ones hold other tests' objects, so they are never "fresh"."""
    kubejit_namespaces = frozenset({"kubejit", "kubejit-grants"})
    strict = ScanOptions(
        managed_namespaces=frozenset({"default", *kubejit_namespaces}),
        privileged_namespaces=frozenset({"kube-system", *kubejit_namespaces}),
    )
    with ControlPlane(tmp_path / "fresh", name="scan-fresh", binaries=control_plane_binaries) as plane:
        fresh = _snapshot(plane.kubeconfig_path)
        assert fresh.counts()["clusterrolebindings"] > 40 and fresh.counts()["clusterroles"] > 60
        assert scan(fresh, now=datetime.now(UTC), options=strict).findings == ()
        set_up_broker(plane, tmp_path)
        installed = _snapshot(plane.kubeconfig_path)
        broker = {str(b.ref) for b in installed.bindings if BROKER_SUBJECT in b.subjects}
        assert broker == {"ClusterRoleBinding kubejit-broker", "RoleBinding kubejit-grants/kubejit-broker"}
        assert installed.admission is not None
        assert {"kubejit-grant-limits", "kubejit-broker-bindings"} <= installed.admission.enforced
        assert scan(installed, now=datetime.now(UTC), options=strict).findings == ()
        # Someone removes a guard rail: the scan says so (this control plane is the test's own).
        with clients.admin_client(plane) as admin:
            admin.delete(ValidatingAdmissionPolicyBinding, "kubejit-grant-limits")
        unguarded = scan(_snapshot(plane.kubeconfig_path), now=datetime.now(UTC), options=strict)
        assert [(f.rule, f.severity, str(f.object)) for f in unguarded.findings] == [
            ("kubejit-guard-missing", "high", "ValidatingAdmissionPolicy kubejit-grant-limits")
        ]
