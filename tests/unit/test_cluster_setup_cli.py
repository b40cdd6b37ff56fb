"""`kubejit cluster-setup --mode jwt` and `kubejit rotate-jwt-key`, run as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kubejit.cli.app import app
from kubejit.clusters.broker_manifest import GRANT_POLICY
from kubejit.errors import InvalidInput

pytestmark = pytest.mark.unit

CONFIG = """\
broker: {host: 127.0.0.1, port: 8443, tls: {certFile: t.crt, keyFile: t.key}}
clusters:
  - {name: dev, kubeconfig: k, audience: "kubejit:dev", credentialMode: jwt}
  - {name: prod, kubeconfig: k, audience: "https://prod"}
policyFile: policy.yaml
dataDir: data
jwtIssuer: {certificateAuthorityFile: ca.crt, tokenLifetimeMinutes: 2, usernamePrefix: "jit:"}
devIssuer: {enabled: true}
"""
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "ca.crt").write_text(CA)
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    return path


def test_jwt_mode_prints_the_authentication_config_then_rbac_without_service_accounts(config: Path) -> None:
    result = CliRunner().invoke(app, ["cluster-setup", "-c", "dev", "-f", str(config)])
    assert result.exit_code == 0, result.output
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    authn = documents[0]
    assert authn["kind"] == "AuthenticationConfiguration"
    (entry,) = authn["jwt"]
    assert entry["issuer"] == {
        "url": "https://127.0.0.1:8443/k8s",
        "audiences": ["kubejit:dev"],
        "certificateAuthority": CA,
    }
    assert entry["claimMappings"]["username"] == {"claim": "sub", "prefix": "jit:"}
    assert any("<= 120.0" in rule["expression"] for rule in entry["claimValidationRules"])
    rbac = documents[1:]
    assert {d["kind"] for d in rbac} >= {"ClusterRole", "ValidatingAdmissionPolicy"}
    broker_side = [d for d in rbac if d["metadata"]["name"] != GRANT_POLICY]  # that one refuses it
    assert "serviceaccounts/token" not in yaml.safe_dump_all(broker_side)


def test_service_account_mode_prints_only_the_rbac(config: Path) -> None:
    result = CliRunner().invoke(app, ["cluster-setup", "-c", "prod", "-f", str(config)])
    assert result.exit_code == 0, result.output
    assert "AuthenticationConfiguration" not in result.stdout
    assert "serviceaccounts/token" in result.stdout


def test_an_unknown_cluster_is_named_with_the_known_ones(config: Path) -> None:
    result = CliRunner().invoke(app, ["cluster-setup", "-c", "nope", "-f", str(config)])
    assert isinstance(result.exception, InvalidInput)  # main() prints it, with its hint, without a traceback
    assert "no cluster 'nope'" in result.exception.message and "dev, prod" in result.exception.message


def test_rotate_jwt_key_adds_a_key_and_keeps_the_old_one(config: Path) -> None:
    first = CliRunner().invoke(app, ["rotate-jwt-key", "-f", str(config)])
    assert first.exit_code == 0, first.output
    keys = sorted((config.parent / "data" / "jwt-issuer-keys").iterdir())
    assert len(keys) == 2  # the first key (made on first use) and its successor
    assert keys[0].stem.split("-")[1] in first.stdout and keys[1].stem.split("-")[1] in first.stdout
