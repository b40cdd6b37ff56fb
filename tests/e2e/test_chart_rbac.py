"""The broker chart's RBAC is enough to serve a grant and no more.

On a control plane of this module's own (the chart's cluster-scoped objects are named as
deploy/rbac.yaml's, which other tests apply to the shared planes), the chart's ``helm template``
output is applied as an operator would ``helm install`` it; a token is minted for the chart's
ServiceAccount (TokenRequest); the real ``kubejit serve`` runs with nothing but that token and serves
a grant end to end. The same token is then refused what a stolen broker credential would try:
binding cluster-admin (the API server's escalation check), cluster-wide bindings, Secrets,
impersonation.
"""

from __future__ import annotations

import base64
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from lightkube import Client, KubeConfig

from kubejit.clusters.bootstrap import token_kubeconfig, wait_for_admission_policy
from kubejit.testing.controlplane import ControlPlane, ControlPlaneBinaries
from kubejit.testing.kubectl import KubectlResult, RedactedToken, kubectl_binary, kubectl_with_token
from tests.broker_identity import BrokerIdentity
from tests.broker_process import Broker
from tests.helm_chart import BROKER_CHART, helm, template
from tests.polling import eventually

__all__ = ["helm"]

BROKER_NAMESPACE = "kubejit"
GRANT_NAMESPACE = "kubejit-grants"


@pytest.fixture(scope="module")
def chart_plane(
    tmp_path_factory: pytest.TempPathFactory, control_plane_binaries: ControlPlaneBinaries
) -> Iterator[ControlPlane]:
    plane = ControlPlane(
        tmp_path_factory.mktemp("control-plane-chart-rbac"),
        name="kubejit-chart-rbac",
        binaries=control_plane_binaries,
    )
    with plane:
        yield plane


def _admin(plane: ControlPlane, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(plane.kubeconfig_path), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done


@pytest.fixture(scope="module")
def chart_token(helm: Path, chart_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart installed (its rendered objects applied), and a kubeconfig with its account's token."""
    rendered = template(helm, BROKER_CHART, namespace=BROKER_NAMESPACE)
    assert rendered.returncode == 0, rendered.stderr
    for name in (BROKER_NAMESPACE, GRANT_NAMESPACE):
        _admin(chart_plane, "create", "namespace", name)
    _admin(chart_plane, "apply", "-f", "-", stdin=rendered.stdout)
    token = _admin(
        chart_plane, "create", "token", "kubejit-broker", "-n", BROKER_NAMESPACE, "--duration=1h"
    ).stdout.strip()
    config = token_kubeconfig(
        cluster=chart_plane.name,
        server=chart_plane.server,
        ca_data=base64.b64encode(Path(chart_plane.ca_path).read_bytes()).decode(),
        token=token,
        user="kubejit-broker",
    )
    path = tmp_path_factory.mktemp("chart-token") / "broker.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    with Client(KubeConfig.from_file(path), trust_env=False) as broker:
        wait_for_admission_policy(broker, cluster=chart_plane.name)
    return path


def _as_broker(plane: ControlPlane, kubeconfig: Path, *args: str) -> KubectlResult:
    token = str(yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"])
    return kubectl_with_token(list(args), server=plane.server, ca_path=plane.ca_path, token=token)


def test_the_charts_account_serves_a_grant(
    chart_plane: ControlPlane, chart_token: Path, tmp_path: Path
) -> None:
    namespace = f"e2e-{secrets.token_hex(4)}"
    _admin(chart_plane, "create", "namespace", namespace)
    broker = Broker(tmp_path / "broker", [BrokerIdentity(plane=chart_plane, kubeconfig_path=chart_token)])
    broker.workdir.mkdir()
    broker.start()
    try:
        broker.login("alice")
        grant = broker.json("alice", "request", "-c", chart_plane.name, "-n", namespace, "-r", "view")
        assert grant["state"] == "active", grant
        token = RedactedToken(broker.grant_token("alice", grant["id"]))

        def as_grant(*args: str) -> KubectlResult:
            return kubectl_with_token(
                list(args), server=chart_plane.server, ca_path=chart_plane.ca_path, token=token
            )

        assert as_grant("get", "pods", "-n", namespace).ok
        assert as_grant("get", "pods", "-n", "default").forbidden
        assert broker.json("alice", "revoke", grant["id"], "--reason", "done")["state"] == "revoked"
        eventually(lambda: as_grant("get", "pods", "-n", namespace).unauthorized, what="grant token rejected")
    finally:
        broker.stop()


def test_the_charts_account_cannot_bind_cluster_admin(chart_plane: ControlPlane, chart_token: Path) -> None:
    namespace = f"e2e-{secrets.token_hex(4)}"
    _admin(chart_plane, "create", "namespace", namespace)
    binding = _as_broker(
        chart_plane,
        chart_token,
        "create", "rolebinding", "kubejit-g0escalate", "-n", namespace,
        "--clusterrole=cluster-admin", f"--serviceaccount={GRANT_NAMESPACE}:kubejit-g0escalate",
    )  # fmt: skip
    # RBAC's own escalation check (a 403), before any admission policy: no `bind` on cluster-admin.
    assert not binding.ok and "is forbidden" in binding.stderr, binding.stderr
    assert "attempting to grant RBAC permissions not currently held" in binding.stderr, binding.stderr
    cluster_wide = _as_broker(
        chart_plane,
        chart_token,
        "create", "clusterrolebinding", "kubejit-g0escalate",
        "--clusterrole=cluster-admin", f"--serviceaccount={GRANT_NAMESPACE}:kubejit-g0escalate",
    )  # fmt: skip
    assert not cluster_wide.ok and "is forbidden" in cluster_wide.stderr, cluster_wide.stderr


@pytest.mark.parametrize(
    "action",
    [
        ("list", "secrets", "--all-namespaces"),
        ("get", "secrets", "-n", BROKER_NAMESPACE),
        ("create", "clusterrolebindings"),
        ("escalate", "clusterroles"),
        ("impersonate", "users"),
        ("update", "rolebindings", "-n", "default"),
        ("create", "pods", "-n", "default"),
        ("create", "serviceaccounts", "-n", "default"),
        ("create", "serviceaccounts/token", "-n", BROKER_NAMESPACE),
    ],
)
def test_the_charts_account_holds_nothing_more(
    chart_plane: ControlPlane, chart_token: Path, action: tuple[str, ...]
) -> None:
    answer = _as_broker(chart_plane, chart_token, "auth", "can-i", *action)
    assert answer.stdout.strip() == "no", f"{action}: {answer.stdout}{answer.stderr}"
