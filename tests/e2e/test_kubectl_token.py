"""A ServiceAccount token in a real kubeconfig, used by the real kubectl: the shape of a kubejit grant.

Everything goes through kubectl: the admin creates the namespace, ServiceAccount and RoleBinding and
mints the token (`kubectl create token`, i.e. TokenRequest); the user writes a kubeconfig with it and
works. Access follows the binding: `view` reads pods but not Secrets, nothing outside the namespace,
and deleting the RoleBinding revokes it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.kubectl import KubectlResult, RedactedToken, run_kubectl
from tests.polling import poll

pytestmark = pytest.mark.e2e

RBAC_PROPAGATION_SECONDS = 10.0


@dataclass(frozen=True)
class Granted:
    namespace: str
    other_namespace: str
    service_account: str
    kubeconfig: Path

    def kubectl(self, *args: str) -> KubectlResult:
        return run_kubectl([f"--kubeconfig={self.kubeconfig}", *args])


def admin(plane: ControlPlane, *args: str) -> KubectlResult:
    result = run_kubectl([f"--kubeconfig={plane.kubeconfig_path}", *args])
    assert result.ok, result.stderr
    return result


def until(probe: Callable[[], KubectlResult], done: Callable[[KubectlResult], bool]) -> KubectlResult:
    """The RBAC caches' propagation: tests/polling.py's loop, at this file's bound and pace."""
    return poll(probe, done, within=RBAC_PROPAGATION_SECONDS, every=0.2)


def write_token_kubeconfig(path: Path, plane: ControlPlane, token: RedactedToken) -> None:
    """The kubeconfig a user of a grant gets: the cluster's CA and server, and a bearer token."""
    config = f"--kubeconfig={path}"
    for args in (
        ["set-cluster", "dev", f"--server={plane.server}", f"--certificate-authority={plane.ca_path}"],
        ["set-credentials", "grantee", f"--token={token}"],
        ["set-context", "grant", "--cluster=dev", "--user=grantee"],
        ["use-context", "grant"],
    ):
        result = run_kubectl([config, "config", *args])
        assert result.ok, result.stderr


@pytest.fixture
def granted(control_plane: ControlPlane, tmp_path: Path) -> Granted:
    suffix = secrets.token_hex(3)
    namespace, other, service_account = f"e2e-{suffix}", f"e2e-other-{suffix}", "carol"
    admin(control_plane, "create", "namespace", namespace)
    admin(control_plane, "create", "namespace", other)
    admin(control_plane, "create", "serviceaccount", service_account, "-n", namespace)
    admin(
        control_plane, "create", "rolebinding", "carol-view", "--clusterrole=view",
        f"--serviceaccount={namespace}:{service_account}", "-n", namespace,
    )  # fmt: skip
    minted = admin(
        control_plane, "create", "token", service_account, "-n", namespace,
        f"--audience={control_plane.audience}", "--duration=10m",
    )  # fmt: skip
    kubeconfig = tmp_path / "grant.kubeconfig"
    write_token_kubeconfig(kubeconfig, control_plane, RedactedToken(minted.stdout.strip()))
    grant = Granted(namespace, other, service_account, kubeconfig)
    allowed = until(lambda: grant.kubectl("get", "pods", "-n", namespace), lambda r: r.ok)
    assert allowed.ok, allowed.stderr
    return grant


def test_the_token_is_the_service_account(granted: Granted) -> None:
    whoami = granted.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert whoami.ok, whoami.stderr
    assert whoami.stdout == f"system:serviceaccount:{granted.namespace}:{granted.service_account}"


def test_view_reads_pods_but_not_secrets_and_nothing_elsewhere(granted: Granted) -> None:
    assert granted.kubectl("auth", "can-i", "list", "pods", "-n", granted.namespace).stdout.strip() == "yes"
    assert granted.kubectl("get", "pods", "-n", granted.namespace).ok
    assert granted.kubectl("get", "secrets", "-n", granted.namespace).forbidden
    assert granted.kubectl("get", "pods", "-n", granted.other_namespace).forbidden
    assert granted.kubectl("create", "configmap", "x", "-n", granted.namespace).forbidden


def test_deleting_the_role_binding_revokes_access(control_plane: ControlPlane, granted: Granted) -> None:
    admin(control_plane, "delete", "rolebinding", "carol-view", "-n", granted.namespace)
    result = until(lambda: granted.kubectl("get", "pods", "-n", granted.namespace), lambda r: r.forbidden)
    assert result.forbidden, result.stderr


def test_a_tampered_token_is_unauthorized(
    control_plane: ControlPlane, granted: Granted, tmp_path: Path
) -> None:
    minted = admin(
        control_plane, "create", "token", granted.service_account, "-n", granted.namespace,
        f"--audience={control_plane.audience}", "--duration=10m",
    )  # fmt: skip
    token = minted.stdout.strip()
    tampered = RedactedToken(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    kubeconfig = tmp_path / "tampered.kubeconfig"
    write_token_kubeconfig(kubeconfig, control_plane, tampered)
    result = run_kubectl([f"--kubeconfig={kubeconfig}", "get", "pods", "-n", granted.namespace])
    assert result.unauthorized, result.stderr
