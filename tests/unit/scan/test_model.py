"""Parsing the API's JSON into the scanner's model, and naming resources as people type them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubejit.clusters.scan.model import (
    LabelSelector,
    ObjectRef,
    parse_binding,
    parse_role,
    parse_selector,
    parse_token_secret,
)
from kubejit.clusters.scan.resources import ResourceName, parse_resource
from kubejit.errors import InvalidInput
from tests.unit.scan.objects import rb, sa


def test_object_paths_are_api_paths() -> None:
    assert (
        ObjectRef("ClusterRoleBinding", "x").path
        == "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/x"
    )
    assert ObjectRef("RoleBinding", "y", "ns").path == (
        "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/rolebindings/y"
    )
    assert ObjectRef("Secret", "t", "ns").path == "/api/v1/namespaces/ns/secrets/t"
    assert str(ObjectRef("Secret", "t", "ns")) == "Secret ns/t"


def test_binding_parsing_tolerates_missing_fields() -> None:
    binding = parse_binding("RoleBinding", {"metadata": {"name": "b", "namespace": "n"}})
    assert binding.subjects == () and binding.role_name == ""
    assert parse_role("ClusterRole", {"metadata": {"name": "r"}}).rules == ()
    assert parse_role("ClusterRole", {"metadata": {"name": "r"}}).aggregation is None


def test_role_binding_refers_to_role_in_its_own_namespace() -> None:
    binding = parse_binding("RoleBinding", rb("team-a", "b", "ops", sa("ci", "robot"), kind="Role"))
    assert binding.role_ref == ObjectRef("Role", "ops", "team-a")
    assert not binding.cluster_wide


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}, {"a": "1"}, False),
        ({}, {"anything": "x"}, True),
    ],
)
def test_label_selectors(selector: dict[str, object], labels: dict[str, str], matches: bool) -> None:
    assert parse_selector(selector).matches(labels) is matches
    assert isinstance(parse_selector(selector), LabelSelector)


def test_token_secret_keeps_owner_and_age_only() -> None:
    secret = parse_token_secret(
        {
            "metadata": {
                "name": "t",
                "namespace": "ns",
                "creationTimestamp": "2024-01-02T03:04:05Z",
                "annotations": {"kubernetes.io/service-account.name": "robot"},
            },
            "data": {"token": "c2VjcmV0"},
        }
    )
    assert (secret.account, secret.created) == ("robot", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert not hasattr(secret, "data")
    assert parse_token_secret({"metadata": {"name": "t", "creationTimestamp": "not a time"}}).created is None


@pytest.mark.parametrize(
    ("typed", "parsed"),
    [
        ("pods", ResourceName("", "pods")),
        ("pod", ResourceName("", "pods")),
        ("PO", ResourceName("", "pods")),
        ("pods/exec", ResourceName("", "pods", "exec")),
        ("deploy", ResourceName("apps", "deployments")),
        ("deployments.apps/scale", ResourceName("apps", "deployments", "scale")),
        ("ingress", ResourceName("networking.k8s.io", "ingresses")),
        ("networkpolicy", ResourceName("networking.k8s.io", "networkpolicies")),
        ("events", ResourceName("", "events")),  # the core group wins a clash
        ("events.events.k8s.io", ResourceName("events.k8s.io", "events")),
        ("clusterroles", ResourceName("rbac.authorization.k8s.io", "clusterroles")),
        ("widgets.example.com", ResourceName("example.com", "widgets")),
        ("widgets.example.com/status", ResourceName("example.com", "widgets", "status")),
    ],
)
def test_resources_as_people_type_them(typed: str, parsed: ResourceName) -> None:
    assert parse_resource(typed) == parsed


@pytest.mark.parametrize(
    "typed", ["widgets", "secret s", "pods/", "pods/exec/x", "", "UPPER.example.com!", ".apps"]
)
def test_unknown_or_malformed_resources_are_input_errors(typed: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_resource(typed)
    assert caught.value.hint and "plural.group" in caught.value.hint


def test_a_typo_gets_a_suggestion() -> None:
    with pytest.raises(InvalidInput, match="did you mean 'secret"):
        parse_resource("secrest")
