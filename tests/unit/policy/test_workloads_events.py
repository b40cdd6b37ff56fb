"""Base-context events: a rule that leaves the trigger open matches only events a repository writer starts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kubejit.identity.principal import Principal
from kubejit.identity.workload import workload_principal
from kubejit.policy.evaluate import DEFAULT_DENY
from kubejit.policy.load import parse_policy
from kubejit.policy.model import Outcome
from kubejit.policy.workloads import (
    EVENT_GUARD,
    PULL_REQUEST_GUARD,
    SAFE_GITHUB_EVENTS,
    WorkloadTarget,
    evaluate_workload,
)

pytestmark = pytest.mark.unit
NOW = datetime(2026, 1, 1, tzinfo=UTC)

POLICY = parse_policy(
    """
roles:
  edit: {clusterRole: edit}
rules: []
workloads:
  - name: open-trigger
    issuer: github
    github: {repository_id: "1"}
    clusters: [staging]
    namespaces: [app]
    roles: [edit]
  - name: after-ci
    issuer: github
    github: {repository_id: "2", event_name: workflow_run}
    clusters: [staging]
    namespaces: [app]
    roles: [edit]
  - name: gitlab-open
    issuer: gitlab
    gitlab: {project_id: "42"}
    clusters: [staging]
    namespaces: [app]
    roles: [edit]
  - name: gitlab-mr
    issuer: gitlab
    gitlab: {project_id: "43", pipeline_source: merge_request_event}
    clusters: [staging]
    namespaces: [app]
    roles: [edit]
  - name: generic
    issuer: other
    claims: {sub: job}
    clusters: [staging]
    namespaces: [app]
    roles: [edit]
""",
    source="p.yaml",
)


def job(issuer: str, **claims: Any) -> Principal:
    return workload_principal(issuer, {"sub": "job", "ref": "refs/heads/main", **claims})


def decide(principal: Principal) -> Any:
    return evaluate_workload(POLICY, principal, WorkloadTarget(), now=NOW)


@pytest.mark.parametrize(
    "event",
    [
        *("workflow_run", "issue_comment", "pull_request_review", "pull_request_review_comment"),
        *("check_run", "check_suite", "discussion", "issues", "fork", "watch", "repository_dispatch"),
    ],
)
def test_base_context_events_are_refused_when_the_rule_does_not_pin_event_name(event: str) -> None:
    verdict = decide(job("github", repository_id="1", event_name=event))
    assert verdict.decision.outcome is Outcome.DENY
    assert verdict.decision.rule == EVENT_GUARD
    assert f"add event_name: [{event}]" in verdict.decision.message
    assert verdict.request is None
    assert "open-trigger" in str(verdict.near_miss)  # the operator sees which rule; the caller does not
    assert "open-trigger" not in verdict.decision.message


def test_a_github_token_without_event_name_is_refused_by_an_open_rule() -> None:
    assert decide(job("github", repository_id="1")).decision.rule == EVENT_GUARD


@pytest.mark.parametrize("event", sorted(SAFE_GITHUB_EVENTS))
def test_events_only_writers_start_match_a_rule_that_leaves_the_trigger_open(event: str) -> None:
    verdict = decide(job("github", repository_id="1", event_name=event))
    assert verdict.decision.outcome is Outcome.AUTO
    assert verdict.decision.rule == "open-trigger"


def test_a_rule_that_pins_the_event_allows_exactly_it() -> None:
    assert (
        decide(job("github", repository_id="2", event_name="workflow_run")).decision.outcome is Outcome.AUTO
    )
    other = decide(job("github", repository_id="2", event_name="issue_comment")).decision
    assert other.rule == DEFAULT_DENY  # the pin does not match: no rule matched at all


def test_pull_requests_stay_refused_even_when_pinned() -> None:
    pinned = job("github", repository_id="2", event_name="pull_request_target")
    assert decide(pinned).decision.rule == PULL_REQUEST_GUARD


def test_gitlab_merge_request_pipelines_need_a_pipeline_source_pin() -> None:
    refused = decide(job("gitlab", project_id="42", pipeline_source="merge_request_event")).decision
    assert refused.rule == EVENT_GUARD
    assert "add pipeline_source: [merge_request_event]" in refused.message
    external = decide(job("gitlab", project_id="42", pipeline_source="external_pull_request_event"))
    assert external.decision.rule == EVENT_GUARD
    assert decide(job("gitlab", project_id="42", pipeline_source="push")).decision.outcome is Outcome.AUTO
    assert decide(job("gitlab", project_id="42")).decision.outcome is Outcome.AUTO
    pinned = job("gitlab", project_id="43", pipeline_source="merge_request_event")
    assert decide(pinned).decision.outcome is Outcome.AUTO


def test_a_generic_issuer_token_that_names_its_event_is_judged_the_same() -> None:
    assert decide(job("other")).decision.outcome is Outcome.AUTO
    assert decide(job("other", event_name="workflow_run")).decision.rule == EVENT_GUARD
    assert decide(job("other", pipeline_source="merge_request_event")).decision.rule == EVENT_GUARD
