"""Who may get which role where, and who must approve: pure functions of (policy, principal, request).

Order of decision: input is validated (``InvalidInput``); any matching deny rule wins; then the first
allow rule whose scope covers the request and whose constraints pass decides; when rules cover the
request but all refuse it, the first of them is named with its reason (more useful than "default-deny");
otherwise "default-deny". Each rule is checked by ``check_rule`` so ``explain`` shows the same reasoning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from kubejit.durations import MAX_DURATION, format_duration
from kubejit.errors import InvalidInput, RoleScopeMismatch
from kubejit.identity.principal import Principal
from kubejit.policy.glob import DNS_LABEL_HINT, is_dns_label, matches_any, matches_namespace
from kubejit.policy.model import SYSTEM_NAMESPACES, AccessRequest, Decision, Outcome, Policy, RoleRef, Rule

#: The rule named by a decision when no rule allows the request.
DEFAULT_DENY = "default-deny"
MAX_REASON_LENGTH = 1000
MAX_TICKET_LENGTH = 128
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]*")


@dataclass(frozen=True)
class RuleCheck:
    """One rule against one request: why it does not apply, or why it applies but cannot allow."""

    rule: Rule
    #: Why the rule's scope (principal, cluster, namespaces, role) does not cover the request.
    mismatch: str | None = None
    #: Allow rules only: the scope covers the request but a constraint (duration, reason, ...) fails.
    failure: str | None = None

    @property
    def applies(self) -> bool:
        return self.mismatch is None

    @property
    def passes(self) -> bool:
        return self.mismatch is None and self.failure is None


@dataclass(frozen=True)
class Assessment:
    """A decision together with the (validated) request and every rule's check, for ``explain``."""

    request: AccessRequest
    decision: Decision
    checks: tuple[RuleCheck, ...]


def evaluate(policy: Policy, principal: Principal, request: AccessRequest, *, now: datetime) -> Decision:
    """Decide a request; raises ``InvalidInput`` for malformed requests, never for refusals."""
    return assess(policy, principal, request, now=now).decision


def assess(policy: Policy, principal: Principal, request: AccessRequest, *, now: datetime) -> Assessment:
    """``evaluate`` with its workings. ``now`` is taken for time-based rules; none exist yet."""
    del now
    checked = validate_request(request)
    role = policy.roles.get(checked.role)
    if role is not None:
        _check_role_shape(role, checked)
    checks = tuple(check_rule(policy, rule, principal, checked) for rule in policy.rules)
    if role is None:
        known = ", ".join(sorted(policy.roles)) or "none"
        message = f"role '{checked.role}' is not defined by the policy (known: {known})"
        return Assessment(checked, Decision(Outcome.DENY, DEFAULT_DENY, message), checks)
    return Assessment(checked, _decide(principal, checked, role, checks), checks)


def validate_request(request: AccessRequest) -> AccessRequest:
    """Reject malformed input and return the request normalised (reason and ticket stripped)."""
    if not is_dns_label(request.cluster):
        raise InvalidInput(f"invalid cluster name {request.cluster!r}", hint=DNS_LABEL_HINT)
    if not is_dns_label(request.role):
        raise InvalidInput(f"invalid role name {request.role!r}", hint=DNS_LABEL_HINT)
    for namespace in request.namespaces:
        if not is_dns_label(namespace):
            raise InvalidInput(f"invalid namespace name {namespace!r}", hint=DNS_LABEL_HINT)
    if len(set(request.namespaces)) != len(request.namespaces):
        raise InvalidInput("a namespace is listed twice", hint="Name each namespace once.")
    if request.duration is not None and not timedelta(0) < request.duration <= MAX_DURATION:
        raise InvalidInput(
            f"duration must be between 1s and {format_duration(MAX_DURATION)}",
            hint="For example 30m or 2h; omit it to get the rule's default.",
        )
    reason = request.reason.strip()
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(
            f"the reason is longer than {MAX_REASON_LENGTH} characters", hint="Link a ticket instead."
        )
    ticket = request.ticket.strip() if request.ticket is not None else ""
    if len(ticket) > MAX_TICKET_LENGTH or not _PRINTABLE.fullmatch(ticket):
        raise InvalidInput(
            "invalid ticket reference", hint=f"Give the ticket id, at most {MAX_TICKET_LENGTH} characters."
        )
    return replace(request, reason=reason, ticket=ticket or None)


def _check_role_shape(role: RoleRef, request: AccessRequest) -> None:
    """A namespaced role needs namespaces; a cluster-wide one must have none (it covers them all)."""
    if role.cluster_scope and request.namespaces:
        raise RoleScopeMismatch(
            f"role '{role.name}' is cluster-wide; a request for it names no namespaces",
            hint="Drop the namespaces, or request a namespaced role.",
        )
    if not role.cluster_scope and not request.namespaces:
        raise RoleScopeMismatch(
            f"role '{role.name}' needs at least one namespace", hint="Name the namespaces you need."
        )


def principal_matches(rule: Rule, principal: Principal) -> bool:
    """A rule applies to a principal named in ``users`` ('*' = anyone) or in one of its ``groups``."""
    return "*" in rule.users or principal.name in rule.users or not rule.groups.isdisjoint(principal.groups)


def user_may_request(policy: Policy, principal: Principal) -> list[Rule]:
    """The allow rules that apply to this principal (for ``whoami``); deny rules may still narrow them."""
    return [rule for rule in policy.rules if rule.effect == "allow" and principal_matches(rule, principal)]


def check_rule(policy: Policy, rule: Rule, principal: Principal, request: AccessRequest) -> RuleCheck:
    """Check one rule against a validated request."""
    mismatch = _scope_mismatch(policy, rule, principal, request)
    if mismatch is not None or rule.effect == "deny":
        return RuleCheck(rule, mismatch=mismatch)
    return RuleCheck(rule, failure=_constraint_failure(rule, request))


def _scope_mismatch(policy: Policy, rule: Rule, principal: Principal, request: AccessRequest) -> str | None:
    if not principal_matches(rule, principal):
        return f"{principal.name} is not in its users or groups"
    if not matches_any(rule.clusters, request.cluster):
        return f"cluster '{request.cluster}' is not in {_listing(rule.clusters)}"
    role = policy.roles.get(request.role)
    if role is None:
        return f"role '{request.role}' is not defined"
    if not _covers_role(rule, role):
        if "*" in rule.roles:
            return f"role '{role.name}' is cluster-wide, so '*' does not cover it: the rule must name it"
        return f"role '{role.name}' is not in {_listing(rule.roles)}"
    if role.cluster_scope:
        return None  # cluster-wide: a deny rule's namespaces cannot leave part of it uncovered
    if rule.effect == "deny":
        if any(matches_any(rule.namespaces, namespace) for namespace in request.namespaces):
            return None
        return f"none of the namespaces is in {_listing(rule.namespaces)}"
    return _namespaces_mismatch(policy, rule, request.namespaces)


def _covers_role(rule: Rule, role: RoleRef) -> bool:
    # '*' in an allow rule stops at cluster-wide roles: granting those must be spelled out.
    wildcard = "*" in rule.roles and (rule.effect == "deny" or not role.cluster_scope)
    return wildcard or role.name in rule.roles


def _namespaces_mismatch(policy: Policy, rule: Rule, namespaces: Sequence[str]) -> str | None:
    protected = policy.protected_namespaces | SYSTEM_NAMESPACES
    outside = [
        namespace
        for namespace in namespaces
        if not any(matches_namespace(pattern, namespace, protected=protected) for pattern in rule.namespaces)
    ]
    if not outside:
        return None
    shielded = [namespace for namespace in outside if namespace in protected]
    note = f" ({_listing(shielded)} protected: only a rule naming it exactly covers it)" if shielded else ""
    return f"namespace {_listing(outside)} not in {_listing(rule.namespaces)}{note}"


def _constraint_failure(rule: Rule, request: AccessRequest) -> str | None:
    name = f"rule '{rule.name}'"
    if request.break_glass and not rule.break_glass:
        return f"{name} is not a break-glass rule"
    if rule.break_glass and not request.break_glass:
        return f"{name} is for break-glass requests only (emergencies; audited)"
    duration = request.duration or rule.default_duration
    if duration > rule.max_duration:
        return f"{name} allows at most {format_duration(rule.max_duration)}, {format_duration(duration)} requested"
    if rule.require_reason and not request.reason:
        return f"{name} requires a reason"
    if rule.ticket_pattern is not None:
        if request.ticket is None:
            return f"{name} requires a ticket matching {rule.ticket_pattern}"
        if re.fullmatch(rule.ticket_pattern, request.ticket) is None:
            return f"{name}: ticket {request.ticket!r} does not match {rule.ticket_pattern}"
    return None


def _decide(
    principal: Principal, request: AccessRequest, role: RoleRef, checks: Sequence[RuleCheck]
) -> Decision:
    asked = _describe(principal, request)
    for check in checks:
        if check.rule.effect == "deny" and check.applies:
            return Decision(
                Outcome.DENY, check.rule.name, f"rule '{check.rule.name}' denies {asked}", role=role
            )
    allow_checks = [check for check in checks if check.rule.effect == "allow" and check.applies]
    for check in allow_checks:
        if check.passes:
            return _allow(check.rule, principal, request, role)
    if allow_checks:
        refused = allow_checks[0]
        return Decision(Outcome.DENY, refused.rule.name, str(refused.failure), role=role)
    wanted = f" for {format_duration(request.duration)}" if request.duration else ""
    return Decision(Outcome.DENY, DEFAULT_DENY, f"no rule allows {asked}{wanted}", role=role)


def _allow(rule: Rule, principal: Principal, request: AccessRequest, role: RoleRef) -> Decision:
    duration = request.duration or rule.default_duration
    approvals = 0 if rule.break_glass else rule.approvals_required
    allowed = f"rule '{rule.name}' allows {_describe(principal, request)} for {format_duration(duration)}"
    if rule.break_glass:
        message = f"{allowed}: active at once, audited"
    elif approvals == 0:
        message = f"{allowed}, approved automatically"
    else:
        groups = ", ".join(sorted(rule.approver_groups))
        message = f"{allowed} once approved by {approvals} member(s) of {groups} (not the requester)"
    return Decision(
        outcome=Outcome.AUTO if approvals == 0 else Outcome.APPROVAL,
        rule=rule.name,
        message=message,
        role=role,
        duration=duration,
        max_duration=rule.max_duration,
        approvals_required=approvals,
        approver_groups=rule.approver_groups if approvals else frozenset(),
        break_glass=rule.break_glass,
        reviewers=rule.reviewers if rule.break_glass else frozenset(),
        extendable=rule.extendable,
        pending_timeout=rule.pending_timeout,
    )


def _describe(principal: Principal, request: AccessRequest) -> str:
    """What was asked, in words: "dev:alice the role 'edit' in namespace 'dev' on cluster 'dev'"."""
    where = f"namespace {_listing(request.namespaces)}" if request.namespaces else "cluster-wide"
    text = f"{principal.name} the role '{request.role}' in {where} on cluster '{request.cluster}'"
    return text + (" as break-glass" if request.break_glass else "")


def _listing(names: Sequence[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)
