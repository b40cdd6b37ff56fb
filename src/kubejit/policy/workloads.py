"""What a CI/CD job may get: pure functions of (policy, workload principal, target) → decision.

Deny by default. A workload rule applies when the token came from its issuer and every claim it pins
matches; the first such rule whose clusters, namespaces, roles and max duration cover the target
decides, auto-approved. What the job did not name (cluster, namespace, role) is taken from that rule
when the rule names exactly one, so a pipeline can ask for "my deploy access" without repeating policy.

Pull requests are refused before any rule is read. A GitHub job token says which repository the
workflow runs in (``repository``) but not where the pull request's head lives: ``pull_request`` jobs
get ``ref: refs/pull/N/merge`` and ``head_ref`` (a branch *name*), with the same ``repository`` whether
the head is in a fork or not, and ``pull_request_target`` jobs run in the base repository's context
while usually checking out the fork's code. As fork and non-fork cannot be told apart from the token,
no rule can allow either event (see docs/ci.md); deploy from ``push``, ``workflow_dispatch`` or an
environment instead.

Events that run in the base repository's context are refused unless a rule says otherwise. A
``workflow_run``, ``issue_comment``, ``pull_request_review``, ``check_run`` (and most other) job runs
on the default branch with the base repository's identity, yet anyone who can open a pull request or
write a comment can trigger it, and such workflows often handle the pull request's code or text. So a
rule that does not pin ``event_name`` matches only the events a writer of the repository starts
(``SAFE_GITHUB_EVENTS``); one that pins it matches exactly what it pins. Likewise a GitLab rule that
does not pin ``pipeline_source`` never matches a merge request's pipeline.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from kubejit.durations import format_duration
from kubejit.identity.principal import Principal
from kubejit.policy.evaluate import DEFAULT_DENY, validate_request
from kubejit.policy.glob import is_glob, matches, matches_namespace
from kubejit.policy.model import SYSTEM_NAMESPACES, AccessRequest, Decision, Outcome, Policy, WorkloadRule

#: The decision's rule when a pull request's token is refused (no rule can allow one).
PULL_REQUEST_GUARD = "pull-request-refused"
PULL_REQUEST_EVENTS = frozenset({"pull_request", "pull_request_target"})
#: The decision's rule when only rules that leave the trigger open matched a base-context event.
EVENT_GUARD = "event-refused"
#: GitHub events only a writer of the repository can start: a rule matches them without pinning event_name.
SAFE_GITHUB_EVENTS = frozenset(
    {"push", "workflow_dispatch", "schedule", "release", "merge_group", "deployment"}
)
#: GitLab pipeline sources a merge request starts: a rule matches them only when it pins pipeline_source.
MERGE_REQUEST_SOURCES = frozenset({"merge_request_event", "external_pull_request_event"})


@dataclass(frozen=True)
class WorkloadTarget:
    """What the job asks for; anything left out comes from the matching rule when it is unambiguous."""

    cluster: str | None = None
    namespaces: tuple[str, ...] = ()
    role: str | None = None
    duration: timedelta | None = None


@dataclass(frozen=True)
class WorkloadDecision:
    decision: Decision
    #: The target made complete; None when refused before it could be resolved.
    request: AccessRequest | None = None
    #: For the audit record only: which pinned claim kept the nearest rule from matching. Never sent
    #: to the caller, who may be any job of any repository: the policy's pins are not its business.
    near_miss: str | None = None


def claim_map(principal: Principal) -> dict[str, str]:
    return dict(principal.claims)


def claims_match(rule: WorkloadRule, claims: Mapping[str, str]) -> str | None:
    """None when every pinned claim matches, else why not (names the first claim that differs)."""
    for match in rule.claims:
        value = claims.get(match.claim)
        if value is None:
            return f"the token has no {match.claim} claim"
        if not any(_claim_value_matches(pattern, value) for pattern in match.values):
            return f"{match.claim} {value!r} is not {' or '.join(repr(v) for v in match.values)}"
    return None


def _claim_value_matches(pattern: str, value: str) -> bool:
    # '*' matches any characters, '/' included: refs/heads/release-* covers refs/heads/release-1/x too.
    # Only '*' is special: '?' and '[...]' match themselves (fnmatch would widen the pin).
    if "*" not in pattern:
        return pattern == value
    return (
        re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), value, re.DOTALL) is not None
    )


def pull_request_refusal(claims: Mapping[str, str]) -> str | None:
    """Why a token from a pull request is refused, or None (see the module docstring)."""
    event = claims.get("event_name")
    if event in PULL_REQUEST_EVENTS:
        return f"job tokens of {event} workflows are refused: the token cannot prove the pull request is not from a fork"
    if claims.get("ref", "").startswith("refs/pull/"):
        return "job tokens for pull request refs (refs/pull/...) are refused: they may run a fork's code"
    return None


def event_refusal(rule: WorkloadRule, claims: Mapping[str, str]) -> str | None:
    """Why this rule may not serve the job's trigger, or None: see the module docstring.

    A GitHub token always names its event; a token of any other issuer that carries ``event_name``
    or ``pipeline_source`` is judged the same way (the claim means the same there).
    """
    pinned = {match.claim for match in rule.claims}
    event = claims.get("event_name")
    github_like = rule.provider == "github" or event is not None
    if github_like and "event_name" not in pinned and event not in SAFE_GITHUB_EVENTS:
        shown = event or "(none)"
        return (
            f"job tokens of {shown} workflows are refused unless the workload rule pins event_name: they run "
            "with the base repository's identity and others (a pull request, a comment) can trigger them; "
            f"to allow it, add event_name: [{shown}] to the rule's claims"
        )
    source = claims.get("pipeline_source")
    if "pipeline_source" not in pinned and source in MERGE_REQUEST_SOURCES:
        return (
            f"job tokens of {source} pipelines are refused unless the workload rule pins pipeline_source: "
            f"a merge request starts them; to allow it, add pipeline_source: [{source}] to the rule's claims"
        )
    return None


def evaluate_workload(
    policy: Policy, principal: Principal, target: WorkloadTarget, *, now: datetime
) -> WorkloadDecision:
    """Decide a workload's exchange; raises ``InvalidInput`` for malformed targets, never for refusals."""
    del now  # no time-based workload rules yet; taken so callers never need to change
    claims = claim_map(principal)
    refusal = pull_request_refusal(claims)
    if refusal is not None:
        return WorkloadDecision(Decision(Outcome.DENY, PULL_REQUEST_GUARD, refusal))
    matching = [
        rule
        for rule in policy.workloads
        if rule.issuer == principal.issuer and claims_match(rule, claims) is None
    ]
    candidates = [rule for rule in matching if event_refusal(rule, claims) is None]
    if matching and not candidates:
        refusal = event_refusal(matching[0], claims)
        near_miss = f"rule '{matching[0].name}': {refusal}"
        return WorkloadDecision(Decision(Outcome.DENY, EVENT_GUARD, refusal or ""), near_miss=near_miss)
    if not candidates:
        message = f"no workload rule matches {principal.name}"
        return WorkloadDecision(
            Decision(Outcome.DENY, DEFAULT_DENY, message), near_miss=_near_miss(policy, principal, claims)
        )
    first_failure: tuple[WorkloadRule, str] | None = None
    for rule in candidates:
        request, failure = _resolve(policy, rule, target)
        if request is not None and failure is None:
            return WorkloadDecision(_allow(policy, rule, principal, request), request)
        if first_failure is None:
            first_failure = (rule, failure or "")
    assert first_failure is not None
    rule, failure = first_failure
    return WorkloadDecision(Decision(Outcome.DENY, rule.name, f"workload rule '{rule.name}': {failure}"))


def _near_miss(policy: Policy, principal: Principal, claims: Mapping[str, str]) -> str:
    """Say why the first rule of this issuer did not match: the operator fixing policy needs it."""
    for rule in policy.workloads:
        if rule.issuer == principal.issuer:
            return f"rule '{rule.name}': {claims_match(rule, claims)}"
    return f"no workload rule names the issuer '{principal.issuer}'"


def _resolve(
    policy: Policy, rule: WorkloadRule, target: WorkloadTarget
) -> tuple[AccessRequest | None, str | None]:
    """The complete request under this rule, or why this rule cannot serve the target."""
    cluster = target.cluster or _only(rule.clusters)
    role = target.role or _only(rule.roles)
    namespaces = target.namespaces or tuple(n for n in [_only(rule.namespaces)] if n)
    missing = [
        what for what, value in (("cluster", cluster), ("namespace", namespaces), ("role", role)) if not value
    ]
    if missing:
        return None, f"it allows several (or patterns of) {', '.join(missing)}: name the one you need"
    assert cluster is not None and role is not None
    request = validate_request(
        AccessRequest(
            cluster=cluster,
            namespaces=namespaces,
            role=role,
            duration=target.duration,
            reason=f"CI/CD token exchange (rule {rule.name})",
        )
    )
    return request, _scope_failure(policy, rule, request)


def _only(values: Sequence[str]) -> str | None:
    return values[0] if len(values) == 1 and not is_glob(values[0]) else None


def _scope_failure(policy: Policy, rule: WorkloadRule, request: AccessRequest) -> str | None:
    if not any(matches(pattern, request.cluster) for pattern in rule.clusters):
        return f"cluster '{request.cluster}' is not in {', '.join(rule.clusters)}"
    if request.role not in rule.roles or request.role not in policy.roles:
        return f"role '{request.role}' is not in {', '.join(rule.roles)}"
    protected = policy.protected_namespaces | SYSTEM_NAMESPACES
    for namespace in request.namespaces:
        if not any(matches_namespace(p, namespace, protected=protected) for p in rule.namespaces):
            return f"namespace '{namespace}' is not in {', '.join(rule.namespaces)}"
    duration = request.duration or rule.default_duration
    if duration > rule.max_duration:
        return f"at most {format_duration(rule.max_duration)}, {format_duration(duration)} requested"
    return None


def _allow(policy: Policy, rule: WorkloadRule, principal: Principal, request: AccessRequest) -> Decision:
    duration = request.duration or rule.default_duration
    role = policy.roles[request.role]
    message = (
        f"workload rule '{rule.name}' allows {principal.name} the role '{role.name}' in namespace "
        f"{', '.join(request.namespaces)} on cluster '{request.cluster}' for {format_duration(duration)}, "
        "approved automatically"
    )
    return Decision(
        outcome=Outcome.AUTO,
        rule=rule.name,
        message=message,
        role=role,
        duration=duration,
        max_duration=rule.max_duration,
    )
