"""The dry-run explanation agrees with the decision and says, rule by rule, why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kubejit.errors import InvalidInput
from kubejit.identity.principal import Principal
from kubejit.policy.evaluate import evaluate
from kubejit.policy.explain import explain, format_explanation
from kubejit.policy.load import parse_policy
from kubejit.policy.model import AccessRequest, Outcome

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, tzinfo=UTC)
ALICE = Principal("dev:alice", frozenset({"developers"}))

POLICY = parse_policy(
    """\
roles:
  view: {clusterRole: view}
  edit: {clusterRole: edit}
rules:
  - {name: no-vault, effect: deny, users: ["*"], namespaces: [vault], roles: [edit]}
  - name: dev-view
    groups: [developers]
    clusters: [dev]
    namespaces: ["*"]
    roles: [view]
    approval: auto
  - name: dev-edit
    groups: [developers]
    clusters: [dev]
    namespaces: ["team-*", vault]
    roles: [edit]
    duration: {max: 2h}
    approval: {approvers: 1, groups: [sre]}
    extendable: true
  - name: dev-edit-again
    groups: [developers]
    clusters: [dev]
    namespaces: ["team-*"]
    roles: [edit]
    approval: auto
  - name: sre-only
    groups: [sre]
    clusters: ["*"]
    namespaces: ["*"]
    roles: [edit]
    approval: auto
""",
    source="p.yaml",
)


def statuses(request: AccessRequest) -> dict[str, str]:
    return {verdict.rule: verdict.status for verdict in explain(POLICY, ALICE, request, now=NOW).rules}


def test_explanation_carries_the_same_decision_as_evaluate() -> None:
    request = AccessRequest("dev", ("team-a",), "edit", reason="  why  ")
    explanation = explain(POLICY, ALICE, request, now=NOW)
    assert explanation.decision == evaluate(POLICY, ALICE, request, now=NOW)
    assert explanation.request.reason == "why"
    assert explanation.principal == ALICE


def test_each_rule_gets_a_verdict_in_policy_order() -> None:
    explanation = explain(POLICY, ALICE, AccessRequest("dev", ("team-a",), "edit"), now=NOW)
    assert [(v.rule, v.effect, v.status) for v in explanation.rules] == [
        ("no-vault", "deny", "skipped"),
        ("dev-view", "allow", "skipped"),
        ("dev-edit", "allow", "decides"),
        ("dev-edit-again", "allow", "applies"),
        ("sre-only", "allow", "skipped"),
    ]
    verdicts = {v.rule: v for v in explanation.rules}
    assert verdicts["dev-view"].detail == "does not apply: role 'edit' is not in 'view'"
    assert verdicts["dev-view"].source == "p.yaml:6"
    assert verdicts["dev-edit-again"].detail == "would allow, but an earlier rule decided"
    assert verdicts["sre-only"].detail == "does not apply: dev:alice is not in its users or groups"


def test_refusing_rule_is_shown_with_its_failure() -> None:
    explanation = explain(
        POLICY, ALICE, AccessRequest("dev", ("team-a",), "edit", duration=timedelta(hours=5)), now=NOW
    )
    verdicts = {v.rule: v for v in explanation.rules}
    assert verdicts["dev-edit"].status == "decides"
    assert explanation.decision.outcome is Outcome.DENY
    assert verdicts["dev-edit"].detail == "rule 'dev-edit' allows at most 2h, 5h requested"
    assert verdicts["dev-edit-again"].status == "refuses"
    assert verdicts["dev-edit-again"].detail == "rule 'dev-edit-again' allows at most 4h, 5h requested"


def test_deny_rule_decides_and_allow_rules_are_overruled() -> None:
    result = statuses(AccessRequest("dev", ("vault",), "edit"))
    assert result == {
        "no-vault": "decides",
        "dev-view": "skipped",
        "dev-edit": "applies",
        "dev-edit-again": "skipped",
        "sre-only": "skipped",
    }
    verdicts = {
        v.rule: v for v in explain(POLICY, ALICE, AccessRequest("dev", ("vault",), "edit"), now=NOW).rules
    }
    assert verdicts["dev-edit"].detail == "would allow, but a deny rule wins"


def test_default_deny_has_every_rule_skipped() -> None:
    explanation = explain(POLICY, ALICE, AccessRequest("prod", ("x",), "view"), now=NOW)
    assert explanation.decision.rule == "default-deny"
    assert {v.status for v in explanation.rules} == {"skipped"}


def test_invalid_request_raises_like_evaluate() -> None:
    with pytest.raises(InvalidInput):
        explain(POLICY, ALICE, AccessRequest("dev", ("Team",), "view"), now=NOW)


def test_format_explanation_for_an_approval() -> None:
    text = format_explanation(explain(POLICY, ALICE, AccessRequest("dev", ("team-a",), "edit"), now=NOW))
    lines = text.splitlines()
    assert lines[0] == "Principal: dev:alice (groups: developers)"
    assert lines[1] == "Request:   role edit on cluster dev, namespaces team-a"
    assert lines[2] == "           duration rule default, reason -, ticket -, break-glass no"
    assert lines[3] == "Decision:  APPROVAL by rule 'dev-edit'"
    assert lines[5] == "           duration 1h (max 2h), needs 1 approval(s) from sre within 1h, extendable"
    assert "  decides  allow dev-edit        p.yaml:12" in lines
    assert "  skipped  deny  no-vault        p.yaml:5" in lines
    assert text.endswith("\n")


def test_format_explanation_for_a_deny_and_an_empty_policy() -> None:
    empty = parse_policy("roles: {view: {clusterRole: view}}\nrules: []\n")
    text = format_explanation(explain(empty, Principal("dev:x"), AccessRequest("c", ("n",), "view"), now=NOW))
    assert "Principal: dev:x (groups: none)" in text
    assert "Decision:  DENY by rule 'default-deny'" in text
    assert "(none: the policy denies every request)" in text
    assert "duration" not in text.splitlines()[4]
