"""The Helm chart (deploy/helm/kubejit): lint, render with several value sets, refuse bad values, and
have the real kube-apiserver accept every rendered object (``kubectl apply --dry-run=server``).

The ServiceMonitor kind comes from the Prometheus Operator, absent from the test API server, so the
module installs a minimal CRD of that name (any spec accepted) before the dry runs.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubejit.config import parse_settings
from kubejit.policy.load import parse_policy
from kubejit.testing import binaries
from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.kubectl import kubectl_binary
from tests.polling import eventually

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "kubejit"
NAMESPACE = "kubejit-chart"

VALUE_SETS: dict[str, list[str]] = {
    "default": [],
    "ingress-tls": [
        "--set", "ingress.enabled=true",
        "--set", "ingress.className=nginx",
        "--set", "ingress.tls[0].secretName=kubejit-tls",
        "--set", "ingress.tls[0].hosts[0]=kubejit.example.com",
        "--set", "config.broker.publicUrl=https://kubejit.example.com",
        "--set", "config.broker.trustedProxies[0]=10.0.0.0/8",
    ],
    "ha-servicemonitor": [
        "--set", "replicaCount=3",
        "--set", "store.existingSecret=kubejit-store",
        "--set", "checkpointKey.existingSecret=kubejit-checkpoint",
        "--set", "clusterKubeconfigs.existingSecret=kubejit-clusters",
        "--set", "serviceMonitor.enabled=true",
        "--set", "podDisruptionBudget.minAvailable=2",
    ],
    "broker-tls": [
        "--set", "brokerTls.existingSecret=kubejit-serving-tls",
        "--set", "serviceMonitor.enabled=true",
        "--set", "serviceMonitor.tlsConfig.serverName=kubejit.kubejit-chart.svc",
    ],
    "jwt": [
        "--set", "brokerTls.existingSecret=kubejit-serving-tls",
        "--set", "config.broker.publicUrl=https://kubejit.example.com",
        "--set-json", 'config.clusters=[{"name": "local", "inCluster": true, "audience": "https://kubernetes.default.svc"}, '
        '{"name": "prod", "kubeconfig": "/etc/kubejit/clusters/prod", "audience": "kubejit:prod", "credentialMode": "jwt"}]',
        "--set", "clusterKubeconfigs.existingSecret=kubejit-clusters",
        "--set", "replicaCount=2",
        "--set", "store.existingSecret=kubejit-store",
        "--set", "jwtIssuer.tokenLifetimeMinutes=10",
        "--set", "jwtIssuer.usernamePrefix=corp-kubejit:",
        "--set", "jwtIssuer.rotateAfterHours=168",
        "--set", "jwtIssuer.certificateAuthority.existingConfigMap=kubejit-ca",
        "--set", "jwtIssuer.keys.persistentVolumeClaim=kubejit-jwt-keys",
    ],
}  # fmt: skip

JWT_CLUSTER = ["--set", "config.clusters[0].name=local", "--set", "config.clusters[0].credentialMode=jwt"]

BAD_VALUES: dict[str, tuple[list[str], str]] = {
    "replicas without a shared store": (["--set", "replicaCount=2"], "existingSecret"),
    "a key the chart owns": (["--set", "config.dataDir=/elsewhere"], "dataDir"),
    "a misspelt value": (["--set", "replicas=3"], "replicas"),
    "a port out of range": (["--set", "service.port=70000"], "port"),
    "a probe path without /": (["--set", "probes.liveness.path=livez"], "path"),
    "an unknown pull policy": (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
    "no clusters": (["--set-json", "config.clusters=[]"], "clusters"),
    "TLS without a secret": (["--set", "ingress.tls[0].hosts[0]=a.example.com"], "secretName"),
    "broker TLS in config": (["--set", "config.broker.tls.certFile=/c.pem"], "tls"),
    "jwt mode without broker TLS": (JWT_CLUSTER, "brokerTls/existingSecret"),
    "jwt replicas without shared keys": (
        [
            *JWT_CLUSTER,
            "--set",
            "brokerTls.existingSecret=t",
            "--set",
            "replicaCount=2",
            "--set",
            "store.existingSecret=s",
        ],
        "jwtIssuer/keys/persistentVolumeClaim",
    ),
    "jwt issuer in config": (["--set", "config.jwtIssuer.keyDir=/k"], "jwtIssuer"),
    "a token lifetime over an hour": (["--set", "jwtIssuer.tokenLifetimeMinutes=90"], "tokenLifetimeMinutes"),
}

SERVICE_MONITOR_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def helm() -> Path:
    """helm from the binary cache; its absence fails (never skips) with the command that builds it."""
    found = binaries.find(binaries.HELM)
    if found is None:
        pytest.fail(
            f"helm {binaries.HELM_VERSION} is not in {binaries.HELM.cache_path.parent} or on PATH: "
            "run `scripts/k8s-binaries helm` once to build it",
            pytrace=False,
        )
    return found


def _run(args: list[str | Path], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], input=stdin, capture_output=True, text=True, check=False)


def _template(helm: Path, values: list[str]) -> subprocess.CompletedProcess[str]:
    return _run([helm, "template", "kubejit", CHART, "--namespace", NAMESPACE, *values])


def _kubectl(plane: ControlPlane, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return _run([kubectl_binary(), "--kubeconfig", str(plane.kubeconfig_path), *args], stdin=stdin)


@pytest.fixture(scope="module")
def chart_cluster(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    """The shared API server with the chart's namespaces and a ServiceMonitor CRD (removed afterwards)."""
    made = _kubectl(control_plane, "create", "namespace", NAMESPACE)
    assert made.returncode == 0, made.stderr
    # The grant namespace of the chart's RBAC (config.grantNamespace); other tests may have made it.
    grants = _kubectl(control_plane, "create", "namespace", "kubejit-grants")
    assert grants.returncode == 0 or "AlreadyExists" in grants.stderr, grants.stderr
    crd = _kubectl(control_plane, "apply", "-f", "-", stdin=json.dumps(SERVICE_MONITOR_CRD))
    assert crd.returncode == 0, crd.stderr
    eventually(
        lambda: _kubectl(control_plane, "get", "servicemonitors", "-n", NAMESPACE).returncode == 0,
        what="the ServiceMonitor CRD to be served",
    )
    try:
        yield control_plane
    finally:
        _kubectl(control_plane, "delete", "crd", SERVICE_MONITOR_CRD["metadata"]["name"], "--wait=false")
        _kubectl(control_plane, "delete", "namespace", NAMESPACE, "--wait=false")


def _documents(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def test_chart_lints_cleanly_with_every_value_set(helm: Path) -> None:
    for name, values in VALUE_SETS.items():
        linted = _run([helm, "lint", "--strict", CHART, *values])
        assert linted.returncode == 0, f"{name}: {linted.stdout}{linted.stderr}"


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_objects_are_accepted_by_the_api_server(
    helm: Path, chart_cluster: ControlPlane, name: str
) -> None:
    rendered = _template(helm, VALUE_SETS[name])
    assert rendered.returncode == 0, rendered.stderr
    kinds = sorted(doc["kind"] for doc in _documents(rendered.stdout))
    expected = ["ConfigMap", "ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget"]
    expected += ["Service", "ServiceAccount"]
    # rbac.create (default): deploy/rbac.yaml's objects for the broker's own cluster (test_rbac_charts.py).
    expected += ["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]
    expected += 2 * ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]  # broker, grants
    expected += {
        "ingress-tls": ["Ingress"],
        "ha-servicemonitor": ["ServiceMonitor"],
        "broker-tls": ["ServiceMonitor"],
    }.get(name, [])
    assert kinds == sorted(expected)
    applied = _kubectl(chart_cluster, "apply", "--dry-run=server", "-f", "-", stdin=rendered.stdout)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("(server dry run)") == len(expected), applied.stdout


def test_pods_run_restricted_with_a_read_only_root(helm: Path) -> None:
    docs = _documents(_template(helm, VALUE_SETS["ha-servicemonitor"]).stdout)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 3
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"] + pod["initContainers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
    broker = pod["containers"][0]
    mounts = {m["mountPath"]: m["name"] for m in broker["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/var/lib/kubejit"]] and "emptyDir" in volumes[mounts["/tmp"]]
    assert broker["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert broker["readinessProbe"]["httpGet"]["path"] == "/readyz"
    store = broker["env"][0]
    assert store["name"] == "KUBEJIT_STORE_URL"
    assert store["valueFrom"]["secretKeyRef"] == {"name": "kubejit-store", "key": "url"}
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert not [d for d in docs if d["kind"] == "Secret"]  # referenced, never created


def test_rendered_config_and_policy_are_ones_the_broker_accepts(helm: Path, tmp_path: Path) -> None:
    for name, values in VALUE_SETS.items():
        docs = _documents(_template(helm, values).stdout)
        config = next(d for d in docs if d["metadata"]["name"].endswith("-config"))["data"]["config.yaml"]
        settings = parse_settings(config, source=f"{name}/config.yaml", base_dir=tmp_path)
        assert settings.broker.host == "0.0.0.0" and settings.broker_namespace == NAMESPACE
        assert settings.broker.metrics_exposed is (name in ("ha-servicemonitor", "broker-tls"))
        assert (settings.broker.tls is not None) is (name in ("broker-tls", "jwt"))
        assert settings.broker.allow_plain_http is (name not in ("broker-tls", "jwt"))
        modes = [c.credential_mode for c in settings.clusters]
        assert modes == (["serviceAccount", "jwt"] if name == "jwt" else ["serviceAccount"])
        policy = next(d for d in docs if d["metadata"]["name"].endswith("-policy"))["data"]["policy.yaml"]
        parse_policy(policy, source=f"{name}/policy.yaml", protected_namespaces=settings.kubejit_namespaces)


def test_broker_tls_mounts_the_secret_and_probes_speak_https(helm: Path) -> None:
    docs = _documents(_template(helm, VALUE_SETS["broker-tls"]).stdout)
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    broker = pod["containers"][0]
    assert broker["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert broker["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    mounts = {m["mountPath"]: m["name"] for m in broker["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/kubejit/tls"]]["secret"]["secretName"] == "kubejit-serving-tls"
    (endpoint,) = next(d for d in docs if d["kind"] == "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {"serverName": "kubejit.kubejit-chart.svc"}
    plain = _documents(_template(helm, []).stdout)
    pod = next(d for d in plain if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["scheme"] == "HTTP"


def test_jwt_mode_renders_the_issuer_and_shares_the_keys_of_every_replica(helm: Path, tmp_path: Path) -> None:
    docs = _documents(_template(helm, VALUE_SETS["jwt"]).stdout)
    config = next(d for d in docs if d["metadata"]["name"].endswith("-config"))["data"]["config.yaml"]
    settings = parse_settings(config, source="jwt/config.yaml", base_dir=tmp_path)
    issuer = settings.jwt_issuer
    assert (issuer.token_lifetime_minutes, issuer.username_prefix, issuer.rotate_after_hours) == (
        10,
        "corp-kubejit:",
        168,
    )
    assert settings.jwt_key_dir == Path("/var/lib/kubejit-jwt/keys")
    assert issuer.certificate_authority_file == Path("/etc/kubejit/jwt-ca/ca.crt")
    assert settings.jwt_issuer_url == "https://kubejit.example.com/k8s"
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    keys = mounts["/var/lib/kubejit-jwt"]
    assert not keys.get("readOnly")  # the broker writes its keys: the first one, rotations, pruning
    assert volumes[keys["name"]]["persistentVolumeClaim"] == {"claimName": "kubejit-jwt-keys"}
    assert volumes[mounts["/etc/kubejit/jwt-ca"]["name"]]["configMap"] == {"name": "kubejit-ca"}
    assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
    # Without a jwt-mode cluster the chart renders none of it.
    plain = _documents(_template(helm, []).stdout)
    config = next(d for d in plain if d["metadata"]["name"].endswith("-config"))["data"]["config.yaml"]
    assert "jwtIssuer" not in yaml.safe_load(config)
    pod = next(d for d in plain if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert not [v for v in pod["volumes"] if v["name"].startswith("jwt-")]


def test_a_policy_change_is_reloaded_in_place_and_a_config_change_rolls_the_pods(helm: Path) -> None:
    def checksum(*values: str) -> str:
        docs = _documents(_template(helm, list(values)).stdout)
        deployment = next(d for d in docs if d["kind"] == "Deployment")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    base = checksum()
    assert checksum("--set", "policy=another-policy") == base
    assert checksum("--set", "config.broker.publicUrl=https://k.example.com") != base


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_are_refused(helm: Path, case: str) -> None:
    values, mentioned = BAD_VALUES[case]
    rendered = _template(helm, values)
    assert rendered.returncode != 0, rendered.stdout
    assert mentioned in rendered.stderr, rendered.stderr
    linted = _run([helm, "lint", CHART, *values])
    assert linted.returncode != 0, linted.stdout
