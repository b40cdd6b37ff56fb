"""The shipped CI examples load, agree with each other, and decide as their comments say."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

import kubejit
from kubejit.config import WorkloadIssuerSettings
from kubejit.identity.workload import workload_principal
from kubejit.policy.load import load_policy_file
from kubejit.policy.workloads import WorkloadTarget, evaluate_workload

pytestmark = pytest.mark.unit
EXAMPLES = Path(kubejit.__file__).parent / "examples"


def test_the_ci_examples_load_and_name_only_configured_issuers() -> None:
    policy = load_policy_file(EXAMPLES / "ci-policy.yaml")
    config = yaml.safe_load((EXAMPLES / "ci-broker-config.yaml").read_text())
    issuers = {s.name: s.kind for s in map(WorkloadIssuerSettings.model_validate, config["workloadIssuers"])}
    assert {(rule.issuer, rule.provider) for rule in policy.workloads} <= set(issuers.items())


def test_the_deploy_workflow_on_main_gets_staging_but_a_feature_branch_gets_nothing() -> None:
    policy = load_policy_file(EXAMPLES / "ci-policy.yaml")
    claims = {
        "sub": "repo:acme/app:ref:refs/heads/main",
        "repository_id": "690001234",
        "repository_owner_id": "4200",
        "ref": "refs/heads/main",
        "event_name": "push",
        "job_workflow_ref": "acme/app/.github/workflows/deploy.yml@refs/heads/main",
    }
    now = datetime(2026, 1, 1, tzinfo=UTC)
    main = evaluate_workload(policy, workload_principal("github", claims), WorkloadTarget(), now=now)
    assert main.decision.rule == "app-deploy-staging" and main.request is not None
    assert (main.request.cluster, main.request.namespaces) == ("staging", ("app",))
    feature = {**claims, "ref": "refs/heads/feature"}
    assert not evaluate_workload(
        policy, workload_principal("github", feature), WorkloadTarget(), now=now
    ).decision.allowed
