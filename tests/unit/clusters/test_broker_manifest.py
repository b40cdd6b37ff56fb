"""deploy/rbac.yaml for other namespaces, checked by value: every occurrence moved, nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from kubejit.clusters.bootstrap import rbac_documents, rbac_manifest
from kubejit.clusters.broker_manifest import broker_manifest
from kubejit.errors import InvalidInput

pytestmark = pytest.mark.unit


def _by_kind(documents: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


def _variables(policy: dict[str, Any]) -> dict[str, str]:
    return {v["name"]: v["expression"] for v in policy["spec"]["variables"]}


def test_the_default_namespaces_give_the_shipped_manifest_unchanged() -> None:
    shipped = [d for d in yaml.safe_load_all(rbac_manifest()) if isinstance(d, dict)]
    assert rbac_documents() == shipped


def test_every_namespace_of_the_manifest_is_the_configured_one() -> None:
    docs = _by_kind(rbac_documents(broker_namespace="team-jit", grant_namespace="team-jit-grants"))
    assert docs["ServiceAccount", "kubejit-broker"]["metadata"]["namespace"] == "team-jit"
    assert docs["Role", "kubejit-broker"]["metadata"]["namespace"] == "team-jit-grants"
    binding = docs["RoleBinding", "kubejit-broker"]
    assert binding["metadata"]["namespace"] == "team-jit-grants"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kubejit-broker", "namespace": "team-jit"}
    ]
    assert docs["ClusterRoleBinding", "kubejit-broker"]["subjects"][0]["namespace"] == "team-jit"
    policy = docs["ValidatingAdmissionPolicy", "kubejit-broker-bindings"]
    variables = _variables(policy)
    assert variables["brokerNamespace"] == "'team-jit'"
    assert variables["grantNamespace"] == "'team-jit-grants'"
    assert variables["protectedNamespaces"] == (
        "['kube-system', 'kube-public', 'kube-node-lease', 'team-jit', 'team-jit-grants']"
    )
    (identity,) = policy["spec"]["matchConditions"]
    assert "['system:serviceaccount:team-jit:kubejit-broker']" in identity["expression"]
    assert "g in ['system:serviceaccounts:team-jit', 'kubejit:brokers']" in identity["expression"]
    (grants,) = docs["ValidatingAdmissionPolicy", "kubejit-grant-limits"]["spec"]["matchConditions"]
    assert "g == 'system:serviceaccounts:team-jit-grants'" in grants["expression"]
    # kubejit's labels (managed-by: kubejit) and names stay; no namespace of the defaults is left.
    text = json.dumps(list(docs.values()))
    assert "kubejit-grants" not in text and ":kubejit:" not in text and 'namespace": "kubejit"' not in text
    assert text.count("'kubejit'") == text.count("labels[k] == 'kubejit'") == 2  # managed-by checks only


def test_the_broker_namespace_may_be_named_like_the_default_grant_namespace() -> None:
    """Substitutions happen at once: a configured name equal to another default moves only once."""
    variables = _variables(
        _by_kind(rbac_documents(broker_namespace="kubejit-grants", grant_namespace="kubejit"))[
            "ValidatingAdmissionPolicy", "kubejit-broker-bindings"
        ]
    )
    assert variables["protectedNamespaces"].endswith("'kubejit-grants', 'kubejit']")


@pytest.mark.parametrize(
    ("broker", "grant", "words"),
    [
        ("kubejit", "x'] || true || ['", "grant namespace \"x'] || true || ['\" is not a DNS label"),
        ("Kubejit", "kubejit-grants", "broker namespace 'Kubejit' is not a DNS label"),
        ("same", "same", "both 'same'"),
    ],
)
def test_namespaces_that_are_not_distinct_dns_labels_are_refused(broker: str, grant: str, words: str) -> None:
    with pytest.raises(InvalidInput) as err:
        rbac_documents(broker_namespace=broker, grant_namespace=grant)
    assert words in err.value.message


def test_a_manifest_that_changed_under_the_substitution_is_an_error_not_a_silent_miss() -> None:
    docs = [d for d in yaml.safe_load_all(rbac_manifest()) if isinstance(d, dict)]
    policy = _by_kind(docs)["ValidatingAdmissionPolicy", "kubejit-broker-bindings"]
    policy["spec"]["matchConditions"][0]["expression"] = "request.userInfo.username == 'someone'"
    with pytest.raises(ValueError, match="system:serviceaccount:kubejit:kubejit-broker"):
        broker_manifest(docs, broker_namespace="team-jit", grant_namespace="team-jit-grants")
