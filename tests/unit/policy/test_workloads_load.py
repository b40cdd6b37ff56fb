"""The policy's workloads: section: good YAML becomes WorkloadRules; bad YAML fails with file:line:column."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kubejit.errors import PolicyError
from kubejit.policy.load import parse_policy
from kubejit.policy.model import ClaimMatch

pytestmark = pytest.mark.unit

HEAD = """\
roles:
  view: {clusterRole: view}
  edit: {clusterRole: edit}
  cluster-viewer: {clusterRole: view, clusterScope: true}
rules: []
workloads:
"""  # the first workload line is line 7


def workloads(body: str) -> str:
    return HEAD + body


GOOD = """\
  - name: deploy-staging
    issuer: github
    github:
      repository_id: 123456
      repository_owner_id: "789"
      ref: [refs/heads/main, "refs/heads/release-*"]
      environment: staging
      event_name: [push, workflow_dispatch]
    clusters: [staging]
    namespaces: [app]
    roles: [edit]
"""


def error_of(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="p.yaml")
    return caught.value


def test_a_github_rule_is_loaded_with_claims_as_text_and_short_defaults() -> None:
    policy = parse_policy(workloads(GOOD), source="p.yaml")
    (rule,) = policy.workloads
    assert rule.name == "deploy-staging"
    assert rule.issuer == "github"
    assert rule.provider == "github"
    assert ClaimMatch("repository_id", ("123456",)) in rule.claims
    assert ClaimMatch("ref", ("refs/heads/main", "refs/heads/release-*")) in rule.claims
    assert rule.default_duration == rule.max_duration == timedelta(minutes=15)
    assert rule.source == "p.yaml:7"
    assert (rule.clusters, rule.namespaces, rule.roles) == (("staging",), ("app",), ("edit",))


def test_gitlab_and_generic_rules_and_durations() -> None:
    text = workloads(
        """\
  - name: gl
    issuer: gitlab
    gitlab: {project_id: "42", ref_protected: true}
    clusters: [prod]
    namespaces: ["team-*"]
    roles: [view]
    duration: {default: 5m, max: 30m}
  - name: other
    issuer: buildkite
    claims: {organization_slug: acme, pipeline_slug: deploy}
    clusters: [prod]
    namespaces: [ops]
    roles: [view]
    duration: {max: 10m}
"""
    )
    gl, other = parse_policy(text).workloads
    assert gl.provider == "gitlab"
    assert ClaimMatch("ref_protected", ("true",)) in gl.claims
    assert (gl.default_duration, gl.max_duration) == (timedelta(minutes=5), timedelta(minutes=30))
    assert other.provider == "oidc"
    assert (other.default_duration, other.max_duration) == (timedelta(minutes=10), timedelta(minutes=10))


def test_a_policy_without_workloads_has_none() -> None:
    assert parse_policy("roles: {}\nrules: []\n").workloads == ()


@pytest.mark.parametrize(
    ("body", "where", "words"),
    [
        (
            "  - name: x\n    issuer: github\n    github: {ref: refs/heads/main}\n"
            "    clusters: [a]\n    namespaces: [b]\n    roles: [view]\n",
            "p.yaml:9:13",
            "pins none of repository_id",
        ),
        (
            "  - name: x\n    issuer: github\n    github: {repository_id: '1', repo: a/b}\n"
            "    clusters: [a]\n    namespaces: [b]\n    roles: [view]\n",
            "p.yaml:9:34",
            "unknown key 'repo'",
        ),
        (
            "  - name: x\n    issuer: github\n    github: {repository_id: '1*'}\n"
            "    clusters: [a]\n    namespaces: [b]\n    roles: [view]\n",
            "p.yaml:9:29",
            "must be a numeric id",
        ),
        (
            "  - name: x\n    issuer: gitlab\n    gitlab: {project_path: a/b}\n"
            "    clusters: [a]\n    namespaces: [b]\n    roles: [view]\n",
            "p.yaml:9:13",
            "pins none of project_id",
        ),
        (
            "  - name: x\n    issuer: github\n    github: {repository_id: '1'}\n"
            "    clusters: [a]\n    namespaces: [b]\n    roles: [cluster-viewer]\n",
            "p.yaml:12:13",
            "namespaced roles only",
        ),
        (
            "  - name: x\n    issuer: github\n    github: {repository_id: '1'}\n"
            "    clusters: [a]\n    namespaces: [b]\n    roles: [admn]\n",
            "p.yaml:12:13",
            "unknown role 'admn'",
        ),
        (
            "  - name: x\n    issuer: github\n    github: {repository_id: '1'}\n"
            "    clusters: [a]\n    roles: [view]\n",
            "p.yaml:7:5",
            "missing the key 'namespaces'",
        ),
        (
            "  - name: x\n    issuer: github\n    github: {repository_id: '1'}\n    claims: {sub: a}\n"
            "    clusters: [a]\n    namespaces: [b]\n    roles: [view]\n",
            "p.yaml:7:5",
            "exactly one of github:",
        ),
        (
            "  - name: x\n    issuer: github\n    github: {repository_id: '1'}\n"
            "    clusters: [a]\n    namespaces: [b]\n    roles: [view]\n    duration: {max: 2h}\n",
            "p.yaml:13:21",
            "longer than 1h",
        ),
        (
            "  - name: x\n    issuer: github\n    github: {repository_id: '1'}\n"
            "    clusters: [a]\n    namespaces: [b]\n    roles: [view]\n    duration: {default: 20m, max: 10m}\n",
            "p.yaml:13:25",
            "longer than max",
        ),
        (
            "  - name: x\n    issuer: oidc\n    claims: {}\n"
            "    clusters: [a]\n    namespaces: [b]\n    roles: [view]\n",
            "p.yaml:9:13",
            "names no claims",
        ),
        (
            "  - name: x\n    issuer: oidc\n    claims: {aud: x}\n"
            "    clusters: [a]\n    namespaces: [b]\n    roles: [view]\n",
            "p.yaml:9:14",
            "unknown key 'aud'",
        ),
        (
            "  - name: x\n    issuer: github\n    github: {repository_id: [{a: 1}]}\n"
            "    clusters: [a]\n    namespaces: [b]\n    roles: [view]\n",
            "p.yaml:9:30",
            "must be text",
        ),
        (
            "  - name: x\n    issuer: Not_A_Name\n    github: {repository_id: '1'}\n"
            "    clusters: [a]\n    namespaces: [b]\n    roles: [view]\n",
            "p.yaml:8:13",
            "invalid issuer name",
        ),
        (
            "  - {name: x, issuer: github, github: {repository_id: '1'}, clusters: [a], namespaces: [b], roles: [view]}\n"
            "  - {name: x, issuer: github, github: {repository_id: '1'}, clusters: [a], namespaces: [b], roles: [view]}\n",
            "p.yaml:8:12",
            "duplicate workload rule name 'x'",
        ),
        (
            "  - {name: default-deny, issuer: github, github: {repository_id: '1'}, clusters: [a], "
            "namespaces: [b], roles: [view]}\n",
            "p.yaml:7:12",
            "invalid workload rule name 'default-deny'",
        ),
        ("  x: 1\n", "p.yaml:7:3", "workloads must be a list"),
    ],
)
def test_bad_workload_rules_say_where_and_what(body: str, where: str, words: str) -> None:
    error = error_of(workloads(body))
    assert error.message.startswith(where + ": "), error.message
    assert words in error.message
    assert error.hint
    if "default-deny" in words:
        assert "reserved" in error.hint  # a valid DNS label: the DNS hint would mislead


@pytest.mark.parametrize("namespace", ["kubejit", "kubejit-grants"])
def test_a_workload_rule_may_not_name_kubejits_own_namespaces(namespace: str) -> None:
    error = error_of(workloads(GOOD.replace("namespaces: [app]", f"namespaces: [{namespace}]")))
    assert f"workload rule 'deploy-staging' grants access to '{namespace}', kubejit's own" in error.message
