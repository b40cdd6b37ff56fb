"""From kubectl's Forbidden to the `kubejit request` that would allow it."""

from __future__ import annotations

from typing import Any

import pytest

from kubejit.denial import Denial, find_denials, request_for

pytestmark = pytest.mark.unit

FORBIDDEN = (
    'Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:kubejit-grants:'
    'kubejit-g1a2b3" cannot list resource "pods" in API group "" in the namespace "team-c"\n'
)
GRANT: dict[str, Any] = {
    "id": "g1a2b3",
    "state": "active",
    "cluster": "dev",
    "namespaces": ["team-a"],
    "role": "view",
}


def test_finds_the_grant_verb_resource_and_namespace() -> None:
    (denial,) = find_denials("noise\n" + FORBIDDEN + FORBIDDEN)
    assert denial == Denial(
        "system:serviceaccount:kubejit-grants:kubejit-g1a2b3", "list", "pods", "", "team-c"
    )
    assert denial.grant_id == "g1a2b3" and denial.what == "list pods in namespace team-c"


def test_cluster_scope_api_groups_and_other_identities() -> None:
    text = (
        'nodes is forbidden: User "alice@example.com" cannot list resource "nodes" in API group "" at the '
        'cluster scope\ndeployments.apps "x" is forbidden: User "system:serviceaccount:kubejit-grants:'
        'kubejit-g9" cannot delete resource "deployments" in API group "apps" in the namespace "team-a"'
    )
    people, grant = find_denials(text)
    assert people.grant_id is None and people.what == "list nodes at cluster scope"
    assert grant.grant_id == "g9" and grant.what == "delete deployments.apps in namespace team-a"
    assert find_denials("error: You must be logged in to the server (Unauthorized)") == []


def test_another_namespace_asks_for_the_same_role_there() -> None:
    (denial,) = find_denials(FORBIDDEN)
    happened, command = request_for(GRANT, denial)
    assert happened == "grant g1a2b3 (view) covers team-a, not team-c"
    assert (
        command
        == 'kubejit request --cluster dev --namespace team-c --role view --reason "list pods in namespace team-c"'
    )


def test_the_granted_namespace_needs_a_bigger_role() -> None:
    (denial,) = find_denials(FORBIDDEN.replace("team-c", "team-a").replace("cannot list", "cannot delete"))
    happened, command = request_for(GRANT, denial)
    assert happened == "role view of grant g1a2b3 does not allow delete pods in namespace team-a"
    assert command.startswith("kubejit request --cluster dev --namespace team-a --role ROLE")


def test_an_ended_grant_asks_for_it_again() -> None:
    (denial,) = find_denials(FORBIDDEN)
    happened, command = request_for({**GRANT, "state": "revoked"}, denial)
    assert happened == "grant g1a2b3 is revoked"
    assert command.startswith("kubejit request --cluster dev --namespace team-a --role view")


def test_a_cluster_wide_grant_covers_every_namespace_so_only_the_role_can_be_short() -> None:
    wide = {**GRANT, "namespaces": [], "role": "reader"}
    (denial,) = find_denials(FORBIDDEN)
    happened, command = request_for(wide, denial)
    assert happened == "role reader of grant g1a2b3 does not allow list pods in namespace team-c"
    assert command.startswith("kubejit request --cluster dev --namespace team-c --role ROLE")
    (at_cluster_scope,) = find_denials(
        'nodes is forbidden: User "system:serviceaccount:kubejit-grants:kubejit-g1a2b3" cannot list '
        'resource "nodes" in API group "" at the cluster scope'
    )
    happened, command = request_for(wide, at_cluster_scope)
    assert command.startswith("kubejit request --cluster dev --role ROLE")
