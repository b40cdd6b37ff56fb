"""A break-glass rule's ``reviewers``: parsed like approver groups, carried by the decision, explained."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from kubejit.cli.app import app
from kubejit.errors import PolicyError
from kubejit.identity.principal import Principal
from kubejit.policy.evaluate import evaluate
from kubejit.policy.explain import explain, format_explanation
from kubejit.policy.load import parse_policy
from kubejit.policy.model import AccessRequest, Outcome

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
HEAD = """\
roles:
  edit: {clusterRole: edit}
rules:
  - name: bg
    groups: [sre]
    clusters: ["*"]
    namespaces: ["*"]
    roles: [edit]
"""
BREAK_GLASS = HEAD + "    breakGlass: true\n"
EMERGENCY = AccessRequest(
    cluster="prod", namespaces=("payments",), role="edit", reason="INC-1", break_glass=True
)
BOB = Principal("bob", frozenset({"sre"}))


def error_of(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    return caught.value


def test_reviewers_are_read_and_carried_by_the_decision() -> None:
    policy = parse_policy(BREAK_GLASS + "    reviewers: [security, audit]\n")
    assert policy.rules[0].reviewers == {"security", "audit"}
    decision = evaluate(policy, BOB, EMERGENCY, now=NOW)
    assert decision.outcome is Outcome.AUTO and decision.break_glass
    assert decision.reviewers == {"security", "audit"}


def test_a_break_glass_rule_without_reviewers_is_reviewed_by_admins() -> None:
    policy = parse_policy(BREAK_GLASS)
    assert policy.rules[0].reviewers == frozenset()
    assert evaluate(policy, BOB, EMERGENCY, now=NOW).reviewers == frozenset()


def test_policy_check_shows_the_reviewers() -> None:
    policy = parse_policy(BREAK_GLASS + "    reviewers: [security]\n")
    text = format_explanation(explain(policy, BOB, EMERGENCY, now=NOW))
    assert "reviewed afterwards by an admin or a member of: security" in text
    bare = format_explanation(explain(parse_policy(BREAK_GLASS), BOB, EMERGENCY, now=NOW))
    assert "reviewed afterwards by an admin or a member of: none named" in bare


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (
            HEAD + "    approval: auto\n    reviewers: [security]\n",
            "policy.yaml:10:5: rule 'bg': reviewers is only for break-glass rules",
            "breakGlass: true",
        ),
        (
            BREAK_GLASS + "    reviewers: [sec urity]\n",
            "policy.yaml:10:17: invalid name 'sec urity' in rule 'bg': reviewers",
            "no spaces",
        ),
        (
            BREAK_GLASS + "    reviewers: ['*']\n",
            "policy.yaml:10:16: rule 'bg': '*' is not a group",
            "[security]",
        ),
        (
            BREAK_GLASS + "    reviewers: security\n",
            "policy.yaml:10:16: rule 'bg': reviewers must be a list",
            None,
        ),
        (
            BREAK_GLASS + "    reviewers: [1]\n",
            "10:17: an entry of rule 'bg': reviewers must be a string",
            None,
        ),
        (BREAK_GLASS + "    reviewer: [security]\n", "policy.yaml:10:5: unknown key 'reviewer'", None),
    ],
)
def test_bad_reviewers_are_refused_with_their_position(text: str, message: str, hint: str | None) -> None:
    error = error_of(text)
    assert message in error.message, error.message
    if hint:
        assert error.hint and hint in error.hint, error.hint


def test_kubejit_policy_check_names_the_reviewers(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(BREAK_GLASS + "    reviewers: [security]\n")
    args = ["policy", "check", "-p", str(policy), "-u", "bob", "-g", "sre", "-c", "prod", "-n", "payments"]
    args += ["-r", "edit", "--break-glass", "--reason", "INC-1"]
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "reviewed afterwards by an admin or a member of: security" in table.output
    as_json = CliRunner().invoke(app, [*args, "-o", "json"])
    data = json.loads(as_json.output)["data"]
    assert (data["break_glass"], data["reviewers"]) == (True, ["security"])
