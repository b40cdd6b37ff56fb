"""The example policy shipped for the quick start loads and decides sensibly."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest

from kubejit.errors import PolicyError
from kubejit.identity.principal import Principal
from kubejit.policy.evaluate import DEFAULT_DENY, evaluate, user_may_request
from kubejit.policy.load import load_policy_file, parse_policy
from kubejit.policy.model import AccessRequest, Outcome, Policy

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, tzinfo=UTC)
DEV = Principal("dev:alice", frozenset({"developers"}))
SRE = Principal("dev:sam", frozenset({"sre"}))
CONTRACTOR = Principal("dev:carl", frozenset({"developers", "contractors"}))


@pytest.fixture(scope="module")
def policy() -> Policy:
    path = resources.files("kubejit") / "examples" / "policy.yaml"
    with resources.as_file(path) as file:
        return load_policy_file(file, protected_namespaces=frozenset({"kubejit"}))


def test_example_defines_roles_and_admins(policy: Policy) -> None:
    assert set(policy.roles) == {"view", "edit", "admin"}
    assert policy.admin_groups == {"platform-admins"}
    assert "kubejit" in policy.protected_namespaces


@pytest.mark.parametrize(
    ("principal", "request_", "outcome", "rule"),
    [
        (DEV, AccessRequest("dev", ("team-a",), "edit"), Outcome.AUTO, "dev-self-service"),
        (
            DEV,
            AccessRequest("dev", ("dev", "team-b"), "view", duration=timedelta(hours=4)),
            Outcome.AUTO,
            None,
        ),
        (
            DEV,
            AccessRequest("dev", ("dev",), "view", duration=timedelta(hours=5)),
            Outcome.DENY,
            "dev-self-service",
        ),
        (DEV, AccessRequest("dev", ("team-a",), "admin"), Outcome.DENY, DEFAULT_DENY),
        (DEV, AccessRequest("dev", ("kube-system",), "view"), Outcome.DENY, DEFAULT_DENY),
        (DEV, AccessRequest("prod", ("team-a",), "view"), Outcome.DENY, DEFAULT_DENY),
        (
            DEV,
            AccessRequest("prod", ("payments",), "edit", reason="fix refunds", ticket="OPS-1234"),
            Outcome.APPROVAL,
            "payments-edit",
        ),
        (DEV, AccessRequest("prod", ("payments",), "edit", reason="fix"), Outcome.DENY, "payments-edit"),
        (DEV, AccessRequest("prod", ("payments",), "edit", ticket="OPS-1"), Outcome.DENY, "payments-edit"),
        (
            CONTRACTOR,
            AccessRequest("prod", ("payments",), "edit", reason="fix", ticket="OPS-1"),
            Outcome.DENY,
            "no-contractors-in-prod",
        ),
        (CONTRACTOR, AccessRequest("dev", ("team-a",), "edit"), Outcome.AUTO, "dev-self-service"),
        (
            SRE,
            AccessRequest("prod", ("orders",), "admin", reason="migration"),
            Outcome.APPROVAL,
            "prod-admin",
        ),
        (SRE, AccessRequest("prod", ("kube-system",), "admin", reason="x"), Outcome.DENY, "sre-break-glass"),
        (
            SRE,
            AccessRequest("prod", ("kube-system",), "admin", reason="etcd down", break_glass=True),
            Outcome.AUTO,
            "sre-break-glass",
        ),
        (
            SRE,
            AccessRequest("prod", ("kubejit",), "admin", reason="x", break_glass=True),
            Outcome.DENY,
            DEFAULT_DENY,
        ),
        (SRE, AccessRequest("dev", ("team-a",), "edit"), Outcome.DENY, DEFAULT_DENY),
    ],
)
def test_example_decisions(
    policy: Policy, principal: Principal, request_: AccessRequest, outcome: Outcome, rule: str | None
) -> None:
    decision = evaluate(policy, principal, request_, now=NOW)
    assert decision.outcome is outcome, decision.message
    assert decision.rule == (rule or "dev-self-service")


def test_prod_admin_needs_two_approvers(policy: Policy) -> None:
    decision = evaluate(policy, SRE, AccessRequest("prod", ("orders",), "admin", reason="m"), now=NOW)
    assert decision.approvals_required == 2
    assert decision.approver_groups == {"sre", "platform-admins"}


def test_whoami_lists_what_each_person_may_request(policy: Policy) -> None:
    assert [rule.name for rule in user_may_request(policy, DEV)] == ["dev-self-service", "payments-edit"]
    assert [rule.name for rule in user_may_request(policy, SRE)] == ["prod-admin", "sre-break-glass"]


DOCS = Path(__file__).resolve().parents[3] / "docs" / "policy.md"


def test_docs_example_loads_and_its_error_example_is_true() -> None:
    text = DOCS.read_text(encoding="utf-8")
    example = re.findall(r"```yaml\n(.*?)```", text, re.S)[0]
    assert [rule.name for rule in parse_policy(example).rules] == [
        "no-contractors-in-prod",
        "dev-self-service",
        "payments-edit",
    ]
    with pytest.raises(PolicyError) as caught:
        parse_policy(example.replace("roles: [view, edit]", "roles: [view, admn]"))
    assert f"Error: {caught.value.message}\nHint: {caught.value.hint}\n" in text


def test_the_examples_break_glass_is_reviewed_by_another_sre(policy: Policy) -> None:
    (rule,) = [r for r in policy.rules if r.break_glass]
    assert rule.reviewers == {"sre"}
