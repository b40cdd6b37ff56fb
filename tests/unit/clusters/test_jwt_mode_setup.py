"""jwt mode, by value: the group bindings, the smaller RBAC, the AuthenticationConfiguration, the config."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kubejit.clusters.bootstrap import rbac_documents
from kubejit.clusters.broker_manifest import BROKER_POLICY, GRANT_POLICY
from kubejit.clusters.jwt_setup import authentication_configuration, jwt_authenticator
from kubejit.clusters.objects import group_role_bindings_for
from kubejit.config import parse_settings
from kubejit.errors import ConfigError, InvalidInput
from kubejit.grants.model import Grant, GrantState
from kubejit.ids import ClusterName, GrantId, NamespaceName, PrincipalName
from kubejit.policy.model import RoleRef

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def grant(**changes: Any) -> Grant:
    base = Grant(
        id=GrantId("g1a2b3c"),
        requester=PrincipalName("alice@example.com"),
        cluster=ClusterName("prod"),
        namespaces=(NamespaceName("team-a"), NamespaceName("team-b")),
        role=RoleRef(name="view", kind="ClusterRole", ref_name="view"),
        duration=timedelta(hours=1),
        reason="debug",
        ticket=None,
        state=GrantState.APPROVED,
        rule="r",
        created_at=T0,
        pending_until=T0 + timedelta(hours=1),
    )
    return dataclasses.replace(base, **changes)


def test_group_bindings_name_the_grant_group_in_each_namespace() -> None:
    bindings = group_role_bindings_for(grant())
    assert [(b.metadata.namespace, b.metadata.name) for b in bindings if b.metadata] == [
        ("team-a", "kubejit-g1a2b3c"),
        ("team-b", "kubejit-g1a2b3c"),
    ]
    for binding in bindings:
        assert binding.subjects is not None
        assert [s.to_dict() for s in binding.subjects] == [
            {"kind": "Group", "name": "kubejit:grant:g1a2b3c", "apiGroup": "rbac.authorization.k8s.io"}
        ]
        assert binding.metadata is not None and binding.metadata.labels == {
            "app.kubernetes.io/managed-by": "kubejit",
            "kubejit.io/grant": "g1a2b3c",
        }


def test_group_bindings_refuse_a_grant_id_that_cannot_name_objects() -> None:
    with pytest.raises(InvalidInput):
        group_role_bindings_for(grant(id=GrantId("G/../x")))


def _kinds(documents: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["kind"], d["metadata"].get("namespace", "")) for d in documents]


def test_the_jwt_mode_rbac_has_no_service_account_or_token_rights() -> None:
    documents = rbac_documents(mode="jwt")
    assert ("Role", "kubejit-grants") not in _kinds(documents)
    assert ("RoleBinding", "kubejit-grants") not in _kinds(documents)
    broker_side = [d for d in documents if d["metadata"]["name"] != GRANT_POLICY]  # that one refuses it
    assert "serviceaccounts/token" not in repr(broker_side)
    (role,) = [d for d in documents if d["kind"] == "ClusterRole"]
    verbs = {(tuple(r["resources"]), tuple(r["verbs"])) for r in role["rules"]}
    assert (("rolebindings",), ("create", "get", "list", "delete")) in verbs
    assert (("clusterroles",), ("bind",)) in verbs
    # The broker's own account stays: it is how the broker reaches the cluster.
    assert ("ServiceAccount", "kubejit") in _kinds(documents)


def test_the_jwt_mode_admission_policy_allows_only_the_grant_group_as_subject() -> None:
    (policy,) = [d for d in rbac_documents(mode="jwt") if _is_policy(d)]
    expressions = " ".join(v["expression"] for v in policy["spec"]["validations"])
    assert "'kubejit:grant:' + object.metadata.labels['kubejit.io/grant']" in expressions
    assert "object.subjects[0].kind == 'Group'" in expressions
    assert "object.subjects[0].kind == 'ServiceAccount'" not in expressions
    (sa_policy,) = [d for d in rbac_documents() if _is_policy(d)]
    assert len(policy["spec"]["validations"]) == len(sa_policy["spec"]["validations"])


def _is_policy(document: dict[str, Any], name: str = BROKER_POLICY) -> bool:
    return bool(document["kind"] == "ValidatingAdmissionPolicy" and document["metadata"]["name"] == name)


def test_the_grant_limits_are_the_same_in_both_modes() -> None:
    """They match the grant identities of either mode, so one policy serves both."""
    (jwt,) = [d for d in rbac_documents(mode="jwt") if _is_policy(d, GRANT_POLICY)]
    (sa,) = [d for d in rbac_documents() if _is_policy(d, GRANT_POLICY)]
    assert jwt == sa
    (condition,) = sa["spec"]["matchConditions"]
    assert "'system:serviceaccounts:kubejit-grants'" in condition["expression"]
    assert "g.startsWith('kubejit:grant:')" in condition["expression"]


def test_the_authentication_config_binds_one_audience_and_caps_lifetime() -> None:
    entry = jwt_authenticator(
        issuer_url="https://broker.example/k8s",
        audience="https://prod.example",
        ca_pem="-----BEGIN CERTIFICATE-----\n...",
        username_prefix="kubejit:",
        max_lifetime_seconds=300,
    )
    document = authentication_configuration([entry])
    assert document["apiVersion"] == "apiserver.config.k8s.io/v1"
    assert document["kind"] == "AuthenticationConfiguration"
    (jwt,) = document["jwt"]
    assert jwt["issuer"] == {
        "url": "https://broker.example/k8s",
        "audiences": ["https://prod.example"],
        "certificateAuthority": "-----BEGIN CERTIFICATE-----\n...",
    }
    assert jwt["claimMappings"] == {
        "username": {"claim": "sub", "prefix": "kubejit:"},
        "groups": {"claim": "groups", "prefix": ""},
    }
    rules = " ".join(r["expression"] for r in jwt["claimValidationRules"])
    assert "double(claims.exp) - double(claims.iat) <= 300.0" in rules
    assert "size(dyn(claims.groups)) == 1" in rules and "startsWith('kubejit:grant:')" in rules
    assert "has(claims.jti)" in rules


CONFIG = """\
broker:
  host: 127.0.0.1
  port: 8443
  tls: {certFile: tls/broker.crt, keyFile: tls/broker.key}
clusters:
  - name: dev
    kubeconfig: dev.kubeconfig
    audience: kubejit:dev
    credentialMode: jwt
  - name: prod
    kubeconfig: prod.kubeconfig
    audience: https://prod.kubejit.local
policyFile: policy.yaml
jwtIssuer:
  tokenLifetimeMinutes: 2
  certificateAuthorityFile: tls/ca.crt
devIssuer: {enabled: true, users: {alice: [developers]}}
"""


def test_jwt_mode_config_resolves_paths_and_makes_an_https_issuer(tmp_path: Path) -> None:
    settings = parse_settings(CONFIG, source="c.yaml", base_dir=tmp_path)
    assert settings.broker.tls is not None and settings.broker.tls.cert_file == tmp_path / "tls/broker.crt"
    assert settings.jwt_issuer.certificate_authority_file == tmp_path / "tls/ca.crt"
    assert [c.credential_mode for c in settings.clusters] == ["jwt", "serviceAccount"]
    assert settings.jwt_issuer_url == "https://127.0.0.1:8443/k8s"
    assert settings.jwt_issuer.token_lifetime_minutes == 2
    assert settings.jwt_key_dir == settings.data_dir / "jwt-issuer-keys"


def test_jwt_mode_without_https_is_refused_with_what_to_set(tmp_path: Path) -> None:
    text = CONFIG.replace("  tls: {certFile: tls/broker.crt, keyFile: tls/broker.key}\n", "")
    with pytest.raises(ConfigError, match=r"broker\.tls"):
        parse_settings(text, source="c.yaml", base_dir=tmp_path)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("tokenLifetimeMinutes: 2", "tokenLifetimeMinutes: 0"), "jwtIssuer.tokenLifetimeMinutes"),
        (("tokenLifetimeMinutes: 2", "tokenLifetimeMinutes: 61"), "jwtIssuer.tokenLifetimeMinutes"),
        (("credentialMode: jwt", "credentialMode: oidc"), "clusters.0.credentialMode"),
        (("tokenLifetimeMinutes: 2", "usernamePrefix: kubejit"), "jwtIssuer.usernamePrefix"),
    ],
)
def test_bad_jwt_settings_are_refused_by_name(change: tuple[str, str], field: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_settings(CONFIG.replace(*change), source="c.yaml", base_dir=tmp_path)
