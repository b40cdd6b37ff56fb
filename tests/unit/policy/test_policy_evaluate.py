"""Evaluating requests: default deny, deny wins, globs, protected namespaces, constraints, approvals."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from kubejit.errors import InvalidInput
from kubejit.identity.principal import Principal
from kubejit.identity.workload import workload_principal
from kubejit.policy.evaluate import (
    DEFAULT_DENY,
    check_rule,
    evaluate,
    principal_matches,
    user_may_request,
    validate_request,
)
from kubejit.policy.load import parse_policy
from kubejit.policy.model import AccessRequest, Decision, Outcome, Policy, RoleRef, Rule
from kubejit.policy.workloads import WorkloadTarget, evaluate_workload

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ALICE = Principal("dev:alice", frozenset({"developers"}))
SAM = Principal("dev:sam", frozenset({"sre"}))
CARL = Principal("dev:carl", frozenset({"developers", "contractors"}))
NOBODY = Principal("dev:nobody")

POLICY = parse_policy(
    """\
roles:
  view: {clusterRole: view}
  edit: {clusterRole: edit}
  admin: {clusterRole: admin}
  nodes: {clusterRole: node-reader, clusterScope: true}
rules:
  - name: no-contractors-in-prod
    effect: deny
    groups: [contractors]
    clusters: [prod]
  - name: no-edit-in-secrets
    effect: deny
    users: ["*"]
    namespaces: [vault]
    roles: [edit, admin]
  - name: dev-self-service
    groups: [developers]
    clusters: [dev, "dev-?"]
    namespaces: ["team-*", dev, vault]
    roles: [view, edit]
    duration: {default: 1h, max: 4h}
    approval: auto
    extendable: true
  - name: prod-view
    groups: [developers]
    clusters: [prod]
    namespaces: ["*"]
    roles: [view]
    approval: auto
    duration: {max: 2h}
  - name: payments-edit
    groups: [developers]
    clusters: [prod]
    namespaces: [payments]
    roles: [edit]
    duration: {default: 1h, max: 2h}
    approval: {approvers: 1, groups: [sre]}
    reason: required
    ticket: '^OPS-[0-9]+$'
    pendingTimeout: 30m
  - name: prod-admin
    groups: [sre]
    clusters: [prod]
    namespaces: ["*"]
    roles: [admin]
    duration: {default: 30m, max: 1h}
    approval: {approvers: 2, groups: [sre, platform-admins]}
    reason: required
  - name: sre-break-glass
    groups: [sre]
    clusters: ["*"]
    namespaces: ["*", kube-system]
    roles: [admin]
    duration: {default: 30m, max: 1h}
    breakGlass: true
  - name: sre-nodes
    users: [dev:sam]
    clusters: [prod]
    roles: [nodes]
    approval: auto
""",
    protected_namespaces=frozenset({"kubejit"}),
)


def decide(
    principal: Principal, cluster: str, namespaces: tuple[str, ...], role: str, **kw: object
) -> Decision:
    request = AccessRequest(cluster, namespaces, role, **kw)  # type: ignore[arg-type]
    return evaluate(POLICY, principal, request, now=NOW)


def test_nothing_matches_default_deny_names_what_was_asked() -> None:
    decision = decide(NOBODY, "prod", ("payments",), "view", duration=timedelta(hours=2))
    assert decision.outcome is Outcome.DENY
    assert not decision.allowed
    assert decision.rule == DEFAULT_DENY
    assert decision.message == (
        "no rule allows dev:nobody the role 'view' in namespace 'payments' on cluster 'prod' for 2h"
    )


def test_empty_policy_denies_everything() -> None:
    policy = parse_policy("roles: {view: {clusterRole: view}}\nrules: []\n")
    decision = evaluate(policy, ALICE, AccessRequest("dev", ("dev",), "view"), now=NOW)
    assert (decision.outcome, decision.rule) == (Outcome.DENY, DEFAULT_DENY)


def test_unknown_role_is_denied_with_the_known_ones() -> None:
    decision = decide(ALICE, "dev", ("dev",), "admn")
    assert (decision.outcome, decision.rule) == (Outcome.DENY, DEFAULT_DENY)
    assert decision.message == "role 'admn' is not defined by the policy (known: admin, edit, nodes, view)"


def test_auto_approved_rule_fills_the_decision() -> None:
    decision = decide(ALICE, "dev", ("team-a",), "edit")
    assert decision.outcome is Outcome.AUTO
    assert decision.allowed
    assert decision.rule == "dev-self-service"
    assert decision.role == RoleRef("edit", "ClusterRole", "edit")
    assert decision.duration == timedelta(hours=1)
    assert decision.max_duration == timedelta(hours=4)
    assert decision.approvals_required == 0
    assert decision.extendable
    assert not decision.break_glass
    assert "approved automatically" in decision.message


def test_requested_duration_is_kept_when_within_max() -> None:
    assert decide(ALICE, "dev", ("dev",), "view", duration=timedelta(hours=4)).duration == timedelta(hours=4)


def test_too_long_is_denied_naming_the_rule_and_the_limit() -> None:
    decision = decide(ALICE, "dev", ("dev",), "view", duration=timedelta(hours=10))
    assert (decision.outcome, decision.rule) == (Outcome.DENY, "dev-self-service")
    assert decision.message == "rule 'dev-self-service' allows at most 4h, 10h requested"


def test_approval_rule_with_reason_and_ticket() -> None:
    decision = decide(ALICE, "prod", ("payments",), "edit", reason="hotfix", ticket="OPS-42")
    assert decision.outcome is Outcome.APPROVAL
    assert decision.rule == "payments-edit"
    assert decision.approvals_required == 1
    assert decision.approver_groups == {"sre"}
    assert decision.pending_timeout == timedelta(minutes=30)
    assert decision.allowed


def test_two_approvers() -> None:
    decision = decide(SAM, "prod", ("orders",), "admin", reason="migrate db")
    assert (decision.outcome, decision.rule, decision.approvals_required) == (
        Outcome.APPROVAL,
        "prod-admin",
        2,
    )
    assert decision.approver_groups == {"sre", "platform-admins"}
    assert decision.duration == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("reason", "ticket", "message"),
    [
        ("", "OPS-42", "rule 'payments-edit' requires a reason"),
        ("   \n\t", "OPS-42", "rule 'payments-edit' requires a reason"),
        ("hotfix", None, "rule 'payments-edit' requires a ticket matching ^OPS-[0-9]+$"),
        ("hotfix", "  ", "rule 'payments-edit' requires a ticket matching ^OPS-[0-9]+$"),
        ("hotfix", "JIRA-42", "rule 'payments-edit': ticket 'JIRA-42' does not match ^OPS-[0-9]+$"),
        ("hotfix", "OPS-42x", "rule 'payments-edit': ticket 'OPS-42x' does not match ^OPS-[0-9]+$"),
    ],
)
def test_constraints_of_the_first_covering_rule_are_reported(
    reason: str, ticket: str | None, message: str
) -> None:
    decision = decide(ALICE, "prod", ("payments",), "edit", reason=reason, ticket=ticket)
    assert (decision.outcome, decision.rule, decision.message) == (Outcome.DENY, "payments-edit", message)


def test_ticket_must_match_whole_even_without_anchors() -> None:
    policy = parse_policy(
        "roles: {view: {clusterRole: view}}\nrules:\n"
        "  - {name: t, users: ['*'], clusters: ['*'], namespaces: ['*'], roles: [view], approval: auto,"
        " ticket: 'OPS-[0-9]+'}\n"
    )

    def outcome(ticket: str) -> Outcome:
        return evaluate(policy, ALICE, AccessRequest("c", ("n",), "view", ticket=ticket), now=NOW).outcome

    assert outcome("OPS-1") is Outcome.AUTO
    assert outcome("xOPS-1") is Outcome.DENY
    assert outcome("OPS-1 and more") is Outcome.DENY


def test_deny_rule_wins_over_an_earlier_matching_allow_rule() -> None:
    # prod-view (allow, later in the file) and no-contractors-in-prod (deny, earlier) both cover it;
    # put deny after allow too to show order does not matter for deny rules.
    policy = Policy(
        roles=POLICY.roles,
        rules=(POLICY.rules[3], POLICY.rules[0]),
        protected_namespaces=POLICY.protected_namespaces,
    )
    decision = evaluate(policy, CARL, AccessRequest("prod", ("orders",), "view"), now=NOW)
    assert (decision.outcome, decision.rule) == (Outcome.DENY, "no-contractors-in-prod")
    assert decision.message.startswith("rule 'no-contractors-in-prod' denies dev:carl the role 'view'")


def test_deny_rule_matches_when_any_requested_namespace_matches() -> None:
    assert decide(ALICE, "dev", ("dev",), "edit").outcome is Outcome.AUTO
    decision = decide(ALICE, "dev", ("dev", "vault"), "edit")
    assert (decision.outcome, decision.rule) == (Outcome.DENY, "no-edit-in-secrets")
    # the deny rule is about edit and admin only
    assert decide(ALICE, "dev", ("dev", "vault"), "view").outcome is Outcome.AUTO


def test_deny_wins_even_for_break_glass() -> None:
    sre_contractor = Principal("dev:eve", frozenset({"sre", "contractors"}))
    decision = decide(sre_contractor, "prod", ("orders",), "admin", reason="fire", break_glass=True)
    assert decision.rule == "no-contractors-in-prod"


def test_deny_rule_covers_cluster_wide_requests_whatever_its_namespaces() -> None:
    contractor = Principal("dev:sam", frozenset({"contractors"}))
    decision = decide(contractor, "prod", (), "nodes")
    assert (decision.outcome, decision.rule) == (Outcome.DENY, "no-contractors-in-prod")


@pytest.mark.parametrize(
    ("cluster", "namespaces", "outcome"),
    [
        ("dev", ("team-a",), Outcome.AUTO),
        ("dev", ("team-0",), Outcome.AUTO),
        ("dev", ("team-a", "team-b", "dev"), Outcome.AUTO),
        ("dev-1", ("team-a",), Outcome.AUTO),
        ("dev-12", ("team-a",), Outcome.DENY),  # '?' is one character
        ("dev", ("teams",), Outcome.DENY),
        ("dev", ("xteam-a",), Outcome.DENY),
        ("dev", ("team-a", "other"), Outcome.DENY),  # every namespace must be covered by the one rule
        ("staging", ("team-a",), Outcome.DENY),
    ],
)
def test_globs_on_clusters_and_namespaces(
    cluster: str, namespaces: tuple[str, ...], outcome: Outcome
) -> None:
    assert decide(ALICE, cluster, namespaces, "view").outcome is outcome


def test_uncovered_namespace_is_default_deny_listing_all_namespaces() -> None:
    decision = decide(ALICE, "dev", ("team-a", "other"), "view")
    assert decision.rule == DEFAULT_DENY
    assert "namespace 'team-a', 'other'" in decision.message


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease", "kubejit"])
def test_globs_never_reach_protected_namespaces(namespace: str) -> None:
    decision = decide(ALICE, "prod", (namespace,), "view")
    assert (decision.outcome, decision.rule) == (Outcome.DENY, DEFAULT_DENY)


def test_a_rule_naming_a_protected_namespace_exactly_covers_it() -> None:
    decision = decide(SAM, "prod", ("kube-system",), "admin", reason="etcd is down", break_glass=True)
    assert (decision.outcome, decision.rule) == (Outcome.AUTO, "sre-break-glass")


def test_protected_namespace_mismatch_is_explained() -> None:
    check = check_rule(POLICY, POLICY.rules[3], ALICE, AccessRequest("prod", ("kube-system",), "view"))
    assert check.mismatch == (
        "namespace 'kube-system' not in '*' ('kube-system' protected: only a rule naming it exactly covers it)"
    )


def test_glob_matching_is_case_sensitive_and_input_must_be_lowercase() -> None:
    with pytest.raises(InvalidInput):
        decide(ALICE, "dev", ("Team-a",), "view")


def test_break_glass_request_skips_approval_rules() -> None:
    decision = decide(SAM, "prod", ("orders",), "admin", reason="outage", break_glass=True)
    assert decision.outcome is Outcome.AUTO
    assert decision.rule == "sre-break-glass"
    assert decision.break_glass
    assert decision.approvals_required == 0
    assert decision.duration == timedelta(minutes=30)


def test_break_glass_needs_a_reason() -> None:
    decision = decide(SAM, "dev", ("orders",), "admin", break_glass=True)
    assert (decision.outcome, decision.rule) == (Outcome.DENY, "sre-break-glass")
    assert decision.message == "rule 'sre-break-glass' requires a reason"


def test_normal_request_never_uses_a_break_glass_rule() -> None:
    decision = decide(SAM, "dev", ("orders",), "admin", reason="curious")
    assert (decision.outcome, decision.rule) == (Outcome.DENY, "sre-break-glass")
    assert "break-glass requests only" in decision.message


def test_break_glass_request_is_not_served_by_a_normal_rule() -> None:
    decision = decide(ALICE, "dev", ("dev",), "view", reason="x", break_glass=True)
    assert (decision.outcome, decision.rule) == (Outcome.DENY, "dev-self-service")
    assert decision.message == "rule 'dev-self-service' is not a break-glass rule"


def test_first_passing_rule_decides_after_an_earlier_one_refuses() -> None:
    # prod-admin covers it but refuses (no break-glass); sre-break-glass, later, allows.
    assert decide(SAM, "prod", ("orders",), "admin", reason="r", break_glass=True).rule == "sre-break-glass"
    # prod-admin refuses 2h (max 1h); sre-break-glass refuses too (not break-glass): the first is named.
    decision = decide(SAM, "prod", ("orders",), "admin", reason="r", duration=timedelta(hours=2))
    assert (decision.rule, decision.message) == (
        "prod-admin",
        "rule 'prod-admin' allows at most 1h, 2h requested",
    )


def test_rule_order_decides_between_two_passing_rules() -> None:
    def rule(name: str, approvers: int) -> str:
        approval = f"{{approvers: {approvers}, groups: [sre]}}" if approvers else "auto"
        return (
            f"  - {{name: {name}, groups: [developers], clusters: [prod], namespaces: ['*'], roles: ['*'],"
            f" approval: {approval}}}\n"
        )

    roles = "roles: {edit: {clusterRole: edit}}\nrules:\n"
    request = AccessRequest("prod", ("payments",), "edit")
    first = evaluate(parse_policy(roles + rule("open", 0) + rule("strict", 1)), ALICE, request, now=NOW)
    assert (first.rule, first.outcome) == ("open", Outcome.AUTO)
    second = evaluate(parse_policy(roles + rule("strict", 1) + rule("open", 0)), ALICE, request, now=NOW)
    assert (second.rule, second.outcome) == ("strict", Outcome.APPROVAL)


def test_wildcard_roles_do_not_cover_cluster_wide_roles() -> None:
    anything = Rule(name="anything", effect="allow", users=frozenset({"*"}))  # clusters/namespaces/roles '*'
    check = check_rule(POLICY, anything, ALICE, AccessRequest("prod", (), "nodes"))
    assert check.mismatch == "role 'nodes' is cluster-wide, so '*' does not cover it: the rule must name it"
    assert decide(ALICE, "prod", (), "nodes").rule == DEFAULT_DENY


def test_cluster_wide_role_named_by_a_rule() -> None:
    decision = decide(SAM, "prod", (), "nodes")
    assert (decision.outcome, decision.rule) == (Outcome.AUTO, "sre-nodes")
    assert decision.role == RoleRef("nodes", "ClusterRole", "node-reader", cluster_scope=True)
    assert "cluster-wide" in decision.message


def test_cluster_wide_role_with_namespaces_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="cluster-wide"):
        decide(SAM, "prod", ("default",), "nodes")


def test_namespaced_role_without_namespaces_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="needs at least one namespace"):
        decide(ALICE, "dev", (), "view")


def test_users_match_by_name_and_star_matches_anyone() -> None:
    rule = Rule(name="r", effect="allow", users=frozenset({"dev:bob"}))
    assert principal_matches(rule, Principal("dev:bob"))
    assert not principal_matches(rule, Principal("other:bob"))
    assert principal_matches(Rule(name="r", effect="allow", users=frozenset({"*"})), NOBODY)
    assert principal_matches(Rule(name="r", effect="allow", groups=frozenset({"sre"})), SAM)
    assert not principal_matches(Rule(name="r", effect="allow", groups=frozenset({"sre"})), ALICE)


def test_user_may_request_lists_allow_rules_for_the_principal() -> None:
    assert [r.name for r in user_may_request(POLICY, ALICE)] == [
        "dev-self-service",
        "prod-view",
        "payments-edit",
    ]
    assert [r.name for r in user_may_request(POLICY, SAM)] == ["prod-admin", "sre-break-glass", "sre-nodes"]
    assert user_may_request(POLICY, NOBODY) == []


BAD_REQUESTS = {
    "cluster with capitals": AccessRequest("Prod", ("a",), "view"),
    "cluster empty": AccessRequest("", ("a",), "view"),
    "cluster glob": AccessRequest("pro*", ("a",), "view"),
    "namespace too long": AccessRequest("prod", ("a" * 64,), "view"),
    "namespace with dot": AccessRequest("prod", ("a.b",), "view"),
    "namespace glob": AccessRequest("prod", ("team-*",), "view"),
    "namespace trailing dash": AccessRequest("prod", ("team-",), "view"),
    "duplicate namespaces": AccessRequest("prod", ("a", "b", "a"), "view"),
    "role with space": AccessRequest("prod", ("a",), "vi ew"),
    "zero duration": AccessRequest("prod", ("a",), "view", duration=timedelta(0)),
    "negative duration": AccessRequest("prod", ("a",), "view", duration=timedelta(minutes=-5)),
    "duration beyond 31d": AccessRequest("prod", ("a",), "view", duration=timedelta(days=32)),
    "reason too long": AccessRequest("prod", ("a",), "view", reason="x" * 1001),
    "ticket too long": AccessRequest("prod", ("a",), "view", ticket="T" * 129),
    "ticket with newline": AccessRequest("prod", ("a",), "view", ticket="OPS-1\nOPS-2"),
}


@pytest.mark.parametrize("request_", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_malformed_requests_raise_invalid_input(request_: AccessRequest) -> None:
    with pytest.raises(InvalidInput) as caught:
        evaluate(POLICY, ALICE, request_, now=NOW)
    assert caught.value.hint


def test_validate_request_normalises_reason_and_ticket() -> None:
    checked = validate_request(AccessRequest("prod", ("a",), "view", reason="  fix it \n", ticket=" OPS-1 "))
    assert (checked.reason, checked.ticket) == ("fix it", "OPS-1")
    assert validate_request(AccessRequest("prod", ("a",), "view", ticket="")).ticket is None


@pytest.mark.parametrize("hours", range(1, 12))
def test_duration_limit_is_exact(hours: int) -> None:
    decision = decide(ALICE, "dev", ("dev",), "view", duration=timedelta(hours=hours))
    assert decision.allowed is (hours <= 4)
    if decision.allowed:
        assert decision.duration == timedelta(hours=hours)


@pytest.mark.parametrize("principal", [ALICE, SAM, CARL, NOBODY])
@pytest.mark.parametrize("cluster", ["dev", "prod", "dev-1", "other"])
@pytest.mark.parametrize("namespaces", [("dev",), ("team-x", "vault"), ("kube-system",), ("payments",)])
@pytest.mark.parametrize("role", ["view", "edit", "admin", "missing"])
@pytest.mark.parametrize("break_glass", [False, True])
def test_every_decision_is_consistent(
    principal: Principal, cluster: str, namespaces: tuple[str, ...], role: str, break_glass: bool
) -> None:
    """Properties over a grid of requests: each decision names a rule that could have made it."""
    request = AccessRequest(cluster, namespaces, role, reason="r", ticket="OPS-1", break_glass=break_glass)
    decision = evaluate(POLICY, principal, request, now=NOW)
    rules = {rule.name: rule for rule in POLICY.rules}
    assert decision.rule in rules or decision.rule == DEFAULT_DENY
    assert decision.message
    if not decision.allowed:
        assert decision.approvals_required == 0
        return
    rule = rules[decision.rule]
    assert rule.effect == "allow"
    assert rule.break_glass is break_glass
    assert principal_matches(rule, principal)
    if "kube-system" in namespaces:
        assert "kube-system" in rule.namespaces  # only an exact name reaches a protected namespace
    assert decision.duration <= decision.max_duration == rule.max_duration
    assert (decision.outcome is Outcome.APPROVAL) == (decision.approvals_required > 0)
    assert decision.approvals_required == 0 or decision.approver_groups
    deny_rules = [r for r in POLICY.rules if r.effect == "deny"]
    assert all(check_rule(POLICY, r, principal, request).mismatch for r in deny_rules)
    # adding a contractor group to the principal can only take access away in prod
    if cluster == "prod":
        contractor = Principal(principal.name, principal.groups | {"contractors"})
        assert not evaluate(POLICY, contractor, request, now=NOW).allowed


OPEN = """\
roles:
  admin: {clusterRole: admin}
rules:
  - name: anything
    users: ["*"]
    clusters: ["*"]
    namespaces: ["*", "kube*", "?????????????", "jit*"]
    roles: ["*"]
    approval: auto
  - name: break-glass
    users: ["*"]
    clusters: ["*"]
    namespaces: ["*"]
    roles: [admin]
    breakGlass: true
workloads:
  - name: ci
    issuer: ci
    claims: {project: app}
    clusters: ["*"]
    namespaces: ["*", "kube*"]
    roles: [admin]
"""
KUBEJITS_OWN = ["kubejit", "kubejit-grants"]
SYSTEM = ["kube-system", "kube-public", "kube-node-lease"]


@pytest.mark.parametrize(
    ("namespace", "moved"),
    [*((n, False) for n in [*SYSTEM, *KUBEJITS_OWN]), *((n, True) for n in [*SYSTEM, "jit", "jit-grants"])],
)
def test_no_glob_reaches_system_or_kubejit_namespaces_for_people_or_workloads(
    namespace: str, moved: bool
) -> None:
    """The broker's namespace is protected without any config (defaults) and where the config moves it."""
    protected = frozenset({"jit", "jit-grants"}) if moved else None
    policy = parse_policy(OPEN, protected_namespaces=protected) if protected else parse_policy(OPEN)
    anyone = Principal("dev:anyone")
    for break_glass in (False, True):
        request = AccessRequest("prod", (namespace,), "admin", reason="outage", break_glass=break_glass)
        decision = evaluate(policy, anyone, request, now=NOW)
        assert (decision.outcome, decision.rule) == (Outcome.DENY, DEFAULT_DENY)
    job = workload_principal("ci", {"sub": "job", "project": "app"})
    target = WorkloadTarget(cluster="prod", namespaces=(namespace,), role="admin")
    assert evaluate_workload(policy, job, target, now=NOW).decision.outcome is Outcome.DENY
    # ...while the same globs do cover an ordinary namespace.
    ordinary = AccessRequest("prod", ("payments",), "admin")
    assert evaluate(policy, anyone, ordinary, now=NOW).outcome is Outcome.AUTO
    assert evaluate_workload(policy, job, replace(target, namespaces=("payments",)), now=NOW).decision.allowed
