"""Why a request gets its decision, rule by rule: the dry run behind ``kubejit policy check``.

Built on ``evaluate.assess`` so the explanation cannot drift from the decision it explains. The result
is plain data (the CLI may render it as JSON) plus one plain-text rendering.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from kubejit.durations import format_duration
from kubejit.identity.principal import Principal
from kubejit.policy.evaluate import RuleCheck, assess
from kubejit.policy.model import AccessRequest, Decision, Outcome, Policy

#: decides: this rule made the decision; applies: it would have, but an earlier rule decided;
#: refuses: it covers the request but a constraint fails; skipped: it does not cover the request.
Status = Literal["decides", "applies", "refuses", "skipped"]


@dataclass(frozen=True)
class RuleVerdict:
    rule: str
    effect: Literal["allow", "deny"]
    #: "file:line" of the rule in the policy.
    source: str
    status: Status
    detail: str


@dataclass(frozen=True)
class Explanation:
    principal: Principal
    #: The request as evaluated (reason and ticket normalised).
    request: AccessRequest
    decision: Decision
    #: One verdict per rule, in policy order.
    rules: tuple[RuleVerdict, ...]


def explain(policy: Policy, principal: Principal, request: AccessRequest, *, now: datetime) -> Explanation:
    """Evaluate a request and say, for every rule, whether and why it applied."""
    assessment = assess(policy, principal, request, now=now)
    verdicts = tuple(_verdict(check, assessment.decision) for check in assessment.checks)
    return Explanation(principal, assessment.request, assessment.decision, verdicts)


def _verdict(check: RuleCheck, decision: Decision) -> RuleVerdict:
    rule = check.rule

    def verdict(status: Status, detail: str) -> RuleVerdict:
        return RuleVerdict(rule.name, rule.effect, rule.source, status, detail)

    if check.mismatch is not None:
        return verdict("skipped", f"does not apply: {check.mismatch}")
    if rule.name == decision.rule:
        return verdict("decides", decision.message)
    if rule.effect == "deny":
        return verdict("applies", "would deny, but an earlier deny rule decided")
    if check.failure is not None:
        return verdict("refuses", check.failure)
    if decision.outcome is Outcome.DENY:
        return verdict("applies", "would allow, but a deny rule wins")
    return verdict("applies", "would allow, but an earlier rule decided")


def format_explanation(explanation: Explanation) -> str:
    """Plain text for a terminal or a CI log."""
    request, decision = explanation.request, explanation.decision
    groups = ", ".join(sorted(explanation.principal.groups)) or "none"
    namespaces = ", ".join(request.namespaces) or "(cluster-wide)"
    lines = [
        f"Principal: {explanation.principal.name} (groups: {groups})",
        f"Request:   role {request.role} on cluster {request.cluster}, namespaces {namespaces}",
        f"           duration {format_duration(request.duration) if request.duration else 'rule default'}, "
        f"reason {repr(request.reason) if request.reason else '-'}, ticket {request.ticket or '-'}, "
        f"break-glass {'yes' if request.break_glass else 'no'}",
        f"Decision:  {decision.outcome.value.upper()} by rule '{decision.rule}'",
        f"           {decision.message}",
    ]
    if decision.allowed:
        lines.append(f"           {_terms(decision)}")
    lines.append("Rules (deny rules win; otherwise the first allow rule that applies and passes):")
    if not explanation.rules:
        lines.append("  (none: the policy denies every request)")
    width = max((len(verdict.rule) for verdict in explanation.rules), default=0)
    for verdict in explanation.rules:
        lines.append(f"  {verdict.status:<8} {verdict.effect:<5} {verdict.rule:<{width}}  {verdict.source}")
        lines.append(f"           {verdict.detail}")
    return "\n".join(lines) + "\n"


def _terms(decision: Decision) -> str:
    text = f"duration {format_duration(decision.duration)} (max {format_duration(decision.max_duration)})"
    if decision.approvals_required:
        groups = ", ".join(sorted(decision.approver_groups))
        text += f", needs {decision.approvals_required} approval(s) from {groups}"
        text += f" within {format_duration(decision.pending_timeout)}"
    if decision.break_glass:
        reviewers = ", ".join(sorted(decision.reviewers)) or "none named"
        text += f", reviewed afterwards by an admin or a member of: {reviewers}"
    if decision.extendable:
        text += ", extendable"
    return text
