"""The control plane behaves like the clusters kubejit grants access to, and fails cleanly.

With a real kube-apiserver and the real kubectl: a TokenRequest token of a ServiceAccount bound to
`view` in one namespace reads there, is Forbidden elsewhere, Unauthorized on another cluster and after
its ServiceAccount is deleted, and every request lands in the audit log under the ServiceAccount.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.core_v1 import Namespace, ServiceAccount, ServiceAccountToken
from lightkube.resources.rbac_authorization_v1 import ClusterRole, RoleBinding

from kubejit.errors import DevClusterError, InvalidInput
from kubejit.testing import clients
from kubejit.testing.controlplane import (
    APISERVER_LOG,
    ETCD_LOG,
    ControlPlane,
    ControlPlaneBinaries,
    locate_binaries,
)
from kubejit.testing.kubectl import KubectlResult, RedactedToken, kubectl_with_token
from kubejit.testing.processes import free_port, pids_mentioning
from kubejit.testing.state import ClusterState, write_state
from tests.polling import poll

pytestmark = pytest.mark.integration

REVOCATION_DEADLINE_SECONDS = 30.0  # kube-apiserver caches a successful token check for 10 s
# RBAC reads bindings from an informer cache: a fresh RoleBinding takes effect after a short delay.
RBAC_PROPAGATION_SECONDS = 10.0


def _unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def processes_mentioning(path: Path) -> list[int]:
    return pids_mentioning(str(path))


@dataclass(frozen=True)
class Grantee:
    namespace: str
    other_namespace: str
    service_account: str
    token: RedactedToken

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def _mint_token(client: Client, *, namespace: str, service_account: str, audience: str) -> RedactedToken:
    request = ServiceAccountToken(
        metadata=ObjectMeta(), spec=TokenRequestSpec(audiences=[audience], expirationSeconds=600)
    )
    issued = client.create(request, name=service_account, namespace=namespace)
    assert issued.status is not None
    return RedactedToken(issued.status.token)


def _grant_view(client: Client, *, namespace: str, service_account: str) -> None:
    client.create(ServiceAccount(metadata=ObjectMeta(name=service_account, namespace=namespace)))
    client.create(
        RoleBinding(
            metadata=ObjectMeta(name=f"{service_account}-view", namespace=namespace),
            roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
            subjects=[Subject(kind="ServiceAccount", name=service_account, namespace=namespace)],
        )
    )


@pytest.fixture(scope="module")
def grantee(control_plane: ControlPlane) -> Iterator[Grantee]:
    """A ServiceAccount with `view` in one namespace, a second namespace, and a 10-minute token."""
    client = clients.admin_client(control_plane)
    try:
        namespace, other = _unique("granted"), _unique("other")
        for name in (namespace, other):
            client.create(Namespace(metadata=ObjectMeta(name=name)))
        _grant_view(client, namespace=namespace, service_account="alice")
        token = _mint_token(
            client, namespace=namespace, service_account="alice", audience=control_plane.audience
        )
        _wait_until_allowed(control_plane, namespace, token)
        yield Grantee(namespace, other, "alice", token)
    finally:
        client.close()


def _get_pods(plane: ControlPlane, namespace: str, token: str) -> KubectlResult:
    return kubectl_with_token(
        ["get", "pods", "-n", namespace], server=plane.server, ca_path=plane.ca_path, token=token
    )


def _wait_until_allowed(plane: ControlPlane, namespace: str, token: str) -> None:
    result = poll(lambda: _get_pods(plane, namespace, token), lambda r: r.ok, within=RBAC_PROPAGATION_SECONDS)
    assert result.ok, result.stderr


def test_token_lists_pods_in_its_namespace(control_plane: ControlPlane, grantee: Grantee) -> None:
    result = _get_pods(control_plane, grantee.namespace, grantee.token)
    assert result.ok, result.stderr
    assert "No resources found" in result.output


def test_token_is_forbidden_in_another_namespace(control_plane: ControlPlane, grantee: Grantee) -> None:
    result = _get_pods(control_plane, grantee.other_namespace, grantee.token)
    assert result.forbidden, result.stderr
    assert grantee.username in result.stderr


def test_token_is_unauthorized_on_another_cluster(
    grantee: Grantee, second_control_plane: ControlPlane
) -> None:
    result = _get_pods(second_control_plane, grantee.namespace, grantee.token)
    assert result.unauthorized, result.stderr


def test_token_for_another_audience_is_unauthorized(
    control_plane: ControlPlane, admin_client: Client, grantee: Grantee
) -> None:
    token = _mint_token(
        admin_client,
        namespace=grantee.namespace,
        service_account=grantee.service_account,
        audience="https://elsewhere.example",
    )
    result = _get_pods(control_plane, grantee.namespace, token)
    assert result.unauthorized, result.stderr


def test_clusters_have_distinct_issuers(
    control_plane: ControlPlane, second_control_plane: ControlPlane
) -> None:
    assert control_plane.issuer == control_plane.audience == "https://kubejit-test-a.kubejit.local"
    assert second_control_plane.issuer != control_plane.issuer
    assert second_control_plane.ca_path.read_bytes() != control_plane.ca_path.read_bytes()


def _audit_events(path: Path, username: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in path.read_text().splitlines() if username in line]
    return [event for event in events if event["user"]["username"] == username]


def test_audit_log_records_the_service_account(control_plane: ControlPlane, grantee: Grantee) -> None:
    _get_pods(control_plane, grantee.namespace, grantee.token)
    _get_pods(control_plane, grantee.other_namespace, grantee.token)

    def seen(events: list[dict[str, Any]]) -> bool:
        answers = {
            (e["objectRef"]["namespace"], e["responseStatus"]["code"]) for e in events if "objectRef" in e
        }
        return {(grantee.namespace, 200), (grantee.other_namespace, 403)} <= answers

    events = poll(lambda: _audit_events(control_plane.audit_log_path, grantee.username), seen, within=15)
    assert seen(events), f"{len(events)} audit events for {grantee.username}"
    assert all(event["level"] == "Metadata" for event in events)
    assert grantee.token not in control_plane.audit_log_path.read_text()


def test_token_is_rejected_after_its_service_account_is_deleted(
    control_plane: ControlPlane, admin_client: Client, grantee: Grantee
) -> None:
    service_account = _unique("bob")
    _grant_view(admin_client, namespace=grantee.namespace, service_account=service_account)
    token = _mint_token(
        admin_client,
        namespace=grantee.namespace,
        service_account=service_account,
        audience=control_plane.audience,
    )
    _wait_until_allowed(control_plane, grantee.namespace, token)

    admin_client.delete(ServiceAccount, service_account, namespace=grantee.namespace)
    deleted_at = time.monotonic()
    result = poll(
        lambda: _get_pods(control_plane, grantee.namespace, token),
        lambda r: r.unauthorized,
        within=REVOCATION_DEADLINE_SECONDS,
    )
    assert result.unauthorized, f"{result.stderr!r}, {time.monotonic() - deleted_at:.0f}s after deletion"


# -- the harness itself ----------------------------------------------------------------------------


def test_aggregated_cluster_roles_have_rules(admin_client: Client) -> None:
    """No controller-manager runs, so the harness itself fills view < edit < admin."""
    rules = {name: admin_client.get(ClusterRole, name).rules or [] for name in ("view", "edit", "admin")}
    assert rules["view"], "view grants nothing"
    assert all(rule in rules["edit"] for rule in rules["view"])
    assert all(rule in rules["admin"] for rule in rules["edit"])


def test_start_writes_a_private_admin_kubeconfig_and_state(control_plane: ControlPlane) -> None:
    assert control_plane.is_running()
    assert control_plane.startup_seconds is not None
    assert control_plane.kubeconfig_path.stat().st_mode & 0o777 == 0o600
    assert (control_plane.workdir / "pki" / "admin.key").stat().st_mode & 0o777 == 0o600
    kubeconfig = control_plane.kubeconfig_path.read_text()
    assert "current-context: kubejit-test-a" in kubeconfig
    assert control_plane.server in kubeconfig
    reloaded = ControlPlane.attach(control_plane.workdir)
    assert reloaded is not None and reloaded.is_running()
    assert reloaded.state.apiserver_pid == control_plane.apiserver_pid


def test_detached_cluster_that_died_is_cleaned_up_and_restarts(
    tmp_path: Path, control_plane_binaries: ControlPlaneBinaries
) -> None:
    workdir = tmp_path / "cluster"
    first = ControlPlane(workdir, name="crashy", detached=True, binaries=control_plane_binaries).start()
    for pid in (first.apiserver_pid, first.etcd_pid):
        os.kill(pid, signal.SIGKILL)
    stale = ControlPlane.attach(workdir)
    assert stale is not None
    assert poll(stale.is_running, lambda running: not running, within=10) is False

    second = ControlPlane(workdir, name="crashy", binaries=control_plane_binaries).start()
    try:
        assert second.is_running()
        assert second.apiserver_pid != first.apiserver_pid
    finally:
        second.stop()
    assert processes_mentioning(workdir) == []
    assert not workdir.exists()


def test_a_reused_pid_is_neither_running_nor_killed(tmp_path: Path) -> None:
    workdir = tmp_path / "cluster"
    workdir.mkdir()
    (workdir / ".kubejit-control-plane").write_text("created\n")
    me = os.getpid()  # recorded as if it were kube-apiserver: its command line does not name workdir
    write_state(
        ClusterState(
            name="reused", workdir=str(workdir), server="https://127.0.0.1:1", port=1, etcd_client_port=2,
            etcd_peer_port=3, etcd_pid=me, apiserver_pid=me, kubeconfig_path="", ca_path="",
            audit_log_path="", issuer="", audience="", created_workdir=True, started_at=0.0,
        )
    )  # fmt: skip
    stale = ControlPlane.attach(workdir)
    assert stale is not None and not stale.is_running()
    stale.stop()
    assert not workdir.exists()  # and this test process is still alive to assert it


def test_a_process_exiting_early_fails_start_and_leaves_nothing_running(
    tmp_path: Path, control_plane_binaries: ControlPlaneBinaries
) -> None:
    broken = ControlPlaneBinaries(
        etcd=Path("/bin/false"), kube_apiserver=control_plane_binaries.kube_apiserver
    )
    workdir = tmp_path / "cluster"
    with pytest.raises(DevClusterError, match=r"etcd exited during start-up \(exit code 1\)") as raised:
        ControlPlane(workdir, name="broken", binaries=broken).start()
    assert str(workdir / ETCD_LOG) in (raised.value.hint or "")
    assert processes_mentioning(workdir) == []
    assert sorted(p.name for p in workdir.iterdir()) == sorted(
        [".kubejit-control-plane", ETCD_LOG, APISERVER_LOG]
    )


def test_never_ready_times_out_and_leaves_nothing_running(
    tmp_path: Path, control_plane_binaries: ControlPlaneBinaries
) -> None:
    workdir = tmp_path / "cluster"
    plane = ControlPlane(workdir, name="slow", binaries=control_plane_binaries, ready_timeout=0.0)
    with pytest.raises(DevClusterError, match="did not become ready within 0s"):
        plane.start()
    assert processes_mentioning(workdir) == []


def test_a_requested_port_in_use_is_refused_before_anything_starts(
    tmp_path: Path, control_plane: ControlPlane
) -> None:
    workdir = tmp_path / "cluster"
    with pytest.raises(DevClusterError, match=f"port {control_plane.port} on 127.0.0.1 is already in use"):
        ControlPlane(workdir, name="clash", port=control_plane.port).start()
    assert not workdir.exists()


def test_a_foreign_non_empty_directory_is_refused(tmp_path: Path) -> None:
    workdir = tmp_path / "mine"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("mine")
    with pytest.raises(DevClusterError, match="is not empty and was not created by kubejit"):
        ControlPlane(workdir, name="foreign", port=free_port()).start()
    assert [p.name for p in workdir.iterdir()] == ["notes.txt"]


def test_an_unwritable_directory_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(DevClusterError, match="cannot create the cluster directory"):
        ControlPlane(blocker / "cluster", name="nowhere").start()


def test_an_invalid_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="invalid cluster name"):
        ControlPlane(tmp_path, name="Not_A_DNS_Label")


def test_missing_binaries_point_to_the_build_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEJIT_BIN_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DevClusterError, match="etcd and kube-apiserver not found") as raised:
        locate_binaries()
    assert "scripts/k8s-binaries" in (raised.value.hint or "")
