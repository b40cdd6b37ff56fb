"""Workload decisions: deny by default, claims must all match, pull requests never pass, targets resolved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubejit.errors import InvalidInput
from kubejit.identity.principal import Principal
from kubejit.identity.workload import workload_principal
from kubejit.policy.evaluate import DEFAULT_DENY
from kubejit.policy.load import parse_policy
from kubejit.policy.model import Outcome
from kubejit.policy.workloads import (
    PULL_REQUEST_GUARD,
    WorkloadTarget,
    _claim_value_matches,
    evaluate_workload,
)

pytestmark = pytest.mark.unit
NOW = datetime(2026, 1, 1, tzinfo=UTC)

POLICY = parse_policy(
    """
roles:
  view: {clusterRole: view}
  edit: {clusterRole: edit}
rules: []
workloads:
  - name: deploy-staging
    issuer: github
    github:
      repository_id: "123456"
      ref: [refs/heads/main, "refs/heads/release-*"]
      event_name: [push, workflow_dispatch]
    clusters: [staging]
    namespaces: [app]
    roles: [edit]
  - name: read-anywhere
    issuer: github
    github: {repository_owner_id: "789"}
    clusters: ["*"]
    namespaces: ["team-*", app]
    roles: [view]
    duration: {default: 5m, max: 30m}
  - name: gitlab-deploy
    issuer: gitlab
    gitlab: {project_id: "42", ref_protected: true}
    clusters: [staging]
    namespaces: [app]
    roles: [edit]
""",
    source="p.yaml",
)


def github(**overrides: Any) -> Principal:
    """A principal from claims shaped like a GitHub Actions job token for a push to main."""
    claims: dict[str, Any] = {
        "sub": "repo:acme/app:ref:refs/heads/main",
        "repository": "acme/app",
        "repository_id": "123456",
        "repository_owner": "acme",
        "repository_owner_id": "789",
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "event_name": "push",
        "environment": "staging",
        "job_workflow_ref": "acme/app/.github/workflows/deploy.yml@refs/heads/main",
        "run_id": "1",
    }
    claims.update(overrides)
    return workload_principal("github", {k: v for k, v in claims.items() if v is not None})


def decide(principal: Principal, **target: Any) -> Any:
    return evaluate_workload(POLICY, principal, WorkloadTarget(**target), now=NOW)


def test_a_push_to_main_gets_the_rules_only_target_without_naming_it() -> None:
    verdict = decide(github())
    assert verdict.decision.outcome is Outcome.AUTO
    assert verdict.decision.rule == "deploy-staging"
    assert verdict.decision.duration == timedelta(minutes=15)
    assert verdict.request.cluster == "staging"
    assert verdict.request.namespaces == ("app",)
    assert verdict.request.role == "edit"


def test_a_glob_ref_matches_and_names_are_checked_on_request() -> None:
    verdict = decide(
        github(ref="refs/heads/release-2.1"), cluster="staging", namespaces=("app",), role="edit"
    )
    assert verdict.decision.allowed
    with pytest.raises(InvalidInput):
        decide(github(), cluster="Not A Cluster")


def test_a_later_rule_serves_a_target_the_first_does_not_cover() -> None:
    verdict = decide(
        github(), cluster="prod", namespaces=("team-a",), role="view", duration=timedelta(minutes=20)
    )
    assert verdict.decision.rule == "read-anywhere"
    assert verdict.decision.duration == timedelta(minutes=20)


@pytest.mark.parametrize(
    ("principal", "rule", "words"),
    [
        (github(repository_id="999", repository_owner_id="1"), DEFAULT_DENY, "repository_id '999'"),
        (github(ref="refs/heads/feature", repository_owner_id="1"), DEFAULT_DENY, "ref 'refs/heads/feature'"),
        (github(repository_id=None, repository_owner_id=None), DEFAULT_DENY, "no repository_id claim"),
        (
            workload_principal("elsewhere", {"sub": "x", "repository_id": "123456"}),
            DEFAULT_DENY,
            "names the issuer",
        ),
    ],
)
def test_jobs_policy_does_not_name_are_denied_by_default(principal: Principal, rule: str, words: str) -> None:
    verdict = decide(principal)
    assert verdict.decision.outcome is Outcome.DENY
    assert verdict.decision.rule == rule
    assert words in str(verdict.near_miss)
    assert verdict.request is None
    # The caller learns that it was refused, not what the policy pins.
    assert verdict.decision.message == f"no workload rule matches {principal.name}"


@pytest.mark.parametrize(
    "overrides",
    [
        {"event_name": "pull_request", "ref": "refs/pull/7/merge", "head_ref": "evil", "base_ref": "main"},
        {"event_name": "pull_request_target", "ref": "refs/heads/main", "head_ref": "evil"},
        {"event_name": "push", "ref": "refs/pull/7/merge"},
    ],
)
def test_pull_requests_are_refused_whatever_the_rules_say(overrides: dict[str, str]) -> None:
    verdict = decide(github(**overrides))
    assert verdict.decision.outcome is Outcome.DENY
    assert verdict.decision.rule == PULL_REQUEST_GUARD
    assert "fork" in verdict.decision.message


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ({"cluster": "staging", "namespaces": ("kube-system",), "role": "edit"}, "namespace 'kube-system'"),
        ({"cluster": "staging", "namespaces": ("app",), "role": "admin"}, "role 'admin'"),
        ({"cluster": "prod", "namespaces": ("app",), "role": "edit"}, "cluster 'prod'"),
        ({"duration": timedelta(minutes=16)}, "at most 15m, 16m requested"),
    ],
)
def test_targets_outside_the_matching_rule_are_refused_naming_it(target: dict[str, Any], words: str) -> None:
    verdict = decide(github(repository_owner_id="1"), **target)
    assert verdict.decision.outcome is Outcome.DENY
    assert verdict.decision.rule == "deploy-staging"
    assert words in verdict.decision.message


def test_a_rule_with_patterns_needs_the_target_named() -> None:
    verdict = decide(github(repository_id="1", ref="refs/heads/x"))
    assert verdict.decision.rule == "read-anywhere"
    assert "name the one you need" in verdict.decision.message


def test_gitlab_claims_compare_as_text_booleans_included() -> None:
    job = workload_principal(
        "gitlab",
        {"sub": "project_path:acme/app:ref_type:branch:ref:main", "project_id": 42, "ref_protected": True},
    )
    assert decide(job).decision.rule == "gitlab-deploy"
    unprotected = workload_principal("gitlab", {"sub": "p", "project_id": "42", "ref_protected": "false"})
    assert decide(unprotected).decision.outcome is Outcome.DENY


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("refs/heads/release-*", "refs/heads/release-1/x", True),
        ("refs/heads/release-*", "refs/heads/release", False),
        ("refs/tags/v?-*", "refs/tags/v?-1", True),
        ("refs/tags/v?-*", "refs/tags/v1-1", False),  # '?' is no wildcard
        ("env-[ab]*", "env-a-prod", False),  # nor are brackets
        ("env-[ab]*", "env-[ab]-prod", True),
        ("main", "main", True),
        ("main", "mainx", False),
    ],
)
def test_only_the_star_is_a_wildcard_in_claim_values(pattern: str, value: str, matches: bool) -> None:
    assert _claim_value_matches(pattern, value) is matches
