"""The broker's Prometheus metrics: one registry for the process, served on /metrics.

Counters that follow the audit log (activations, revocations, expiries, token mints, repairs) are
fed by ``observe_events`` with the events of each committed store transaction, so they count what
this replica did, exactly when it became durable (``sum`` over replicas in PromQL). Every label
value comes from a fixed set or from the broker's config (cluster and sink names): never a grant
id, a user name, a raw path or a client-chosen method, so the number of series stays bounded.
See docs/deploy.md for the list and what to alert on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

# No ``*_created`` series beside each counter and histogram: they double the series for a
# timestamp Prometheus does not need (counter resets show restarts).
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry(auto_describe=True)

#: Seconds; from a cached answer (ms) to a slow cluster call or a request that waits on approval.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: Seconds from a grant's end time to its objects deleted: the sweeper's interval, up to outages.
_CLEANUP_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800)

HTTP_REQUESTS = Histogram(
    "kubejit_http_request_duration_seconds",
    "API requests by route template, method and status class",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
GRANT_TRANSITIONS = Counter(
    "kubejit_grant_transitions",
    "Grants this replica moved into a state (activated, revoked, expired, denied, failed, ...)",
    ["transition"],
    registry=REGISTRY,
)
EXPIRY_CLEANUP = Histogram(
    "kubejit_expiry_cleanup_seconds",
    "From a grant's end time to its ServiceAccount and bindings deleted",
    buckets=_CLEANUP_BUCKETS,
    registry=REGISTRY,
)
TOKENS = Counter(
    "kubejit_tokens_issued",
    "Kubernetes tokens minted for grants (kind: minted, or refreshed by the exec plugin)",
    ["kind"],
    registry=REGISTRY,
)
RECONCILER_REPAIRS = Counter(
    "kubejit_reconciler_repairs",
    "Cluster objects the reconciler restored or deleted as orphans",
    ["repair"],
    registry=REGISTRY,
)
CLEANUPS_DEFERRED = Counter(
    "kubejit_cleanups_deferred",
    "Ended grants whose objects could not be deleted at once (left to the reconciler)",
    registry=REGISTRY,
)
AUDIT_EVENTS = Counter(
    "kubejit_audit_events", "Audit events committed by this replica", ["action"], registry=REGISTRY
)
CLUSTER_CALLS = Histogram(
    "kubejit_cluster_request_duration_seconds",
    "Kubernetes API calls by cluster, verb and outcome",
    ["cluster", "verb", "outcome"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
CLUSTER_ERRORS = Counter(
    "kubejit_cluster_errors",
    "Failed Kubernetes API calls by cluster and kind (unavailable, forbidden, conflict, error)",
    ["cluster", "kind"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "kubejit_rate_limit_refusals",
    "Requests refused with 429 (limit: source, principal, auth_failures)",
    ["limit"],
    registry=REGISTRY,
)

_TRANSITIONS = {
    "grant.requested": "requested",
    "grant.approved": "approved",
    "grant.activated": "activated",
    "grant.revoked": "revoked",
    "grant.expired": "expired",
    "grant.denied": "denied",
    "grant.failed": "failed",
    "grant.extended": "extended",
}
_TOKENS = {"token.minted": "minted", "token.refreshed": "refreshed"}
_REPAIRS = {"reconciler.restored": "restored", "reconciler.deleted_orphans": "deleted_orphans"}
_VERBS = frozenset({"create", "get", "list", "delete", "patch", "update", "install"})
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class Event(Protocol):
    """What ``observe_events`` reads of an audit event (``grants.ports.AuditEvent``)."""

    @property
    def action(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def details(self) -> Mapping[str, Any]: ...


def observe_events(events: Iterable[Event]) -> None:
    """Count committed audit events; the cleanup of an expired grant times its lateness."""
    for event in events:
        action = event.action
        AUDIT_EVENTS.labels(action=action).inc()
        if action in _TRANSITIONS:
            GRANT_TRANSITIONS.labels(transition=_TRANSITIONS[action]).inc()
        elif action in _TOKENS:
            TOKENS.labels(kind=_TOKENS[action]).inc()
        elif action in _REPAIRS:
            RECONCILER_REPAIRS.labels(repair=_REPAIRS[action]).inc()
        elif action == "grant.cleanup_deferred":
            CLEANUPS_DEFERRED.inc()
        elif action == "grant.cleaned_up" and event.details.get("state") == "expired":
            due = event.details.get("expires_at")
            if isinstance(due, datetime):
                EXPIRY_CLEANUP.observe(max(0.0, (event.at - due).total_seconds()))


def observe_request(*, route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(
        route=route, method=method if method in _METHODS else "other", status=f"{status // 100}xx"
    ).observe(seconds)


def observe_cluster_call(*, cluster: str, action: str, seconds: float, error: str | None) -> None:
    """One block of API calls; ``error`` is the failure's kind (unavailable, forbidden, ...) or None."""
    verb = action.split(" ", 1)[0]
    verb = verb if verb in _VERBS else "other"
    CLUSTER_CALLS.labels(cluster=cluster, verb=verb, outcome="error" if error else "ok").observe(seconds)
    if error:
        CLUSTER_ERRORS.labels(cluster=cluster, kind=error).inc()


def refused(limit: str) -> None:
    RATE_LIMITED.labels(limit=limit).inc()
