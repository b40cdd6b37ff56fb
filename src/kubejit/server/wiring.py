"""Build the broker's services from validated settings: the only place that knows every adapter."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from kubejit import metrics
from kubejit.audit.checkpoint import load_or_create_signing_key
from kubejit.clock import Clock, SystemClock
from kubejit.clusters.adapter import KubeClusterAdapter
from kubejit.clusters.registry import build_adapter
from kubejit.config import ClusterSettings, Settings
from kubejit.errors import ConfigError
from kubejit.grants.ports import ClusterAdapter
from kubejit.grants.service import GrantService
from kubejit.identity.cluster_keys import ClusterKeyRing
from kubejit.identity.cluster_tokens import ClusterTokenIssuer
from kubejit.identity.dev_issuer import DevIssuer, load_or_create_key
from kubejit.identity.issuers import build_issuers, login_offers
from kubejit.identity.oidc import IssuerSet
from kubejit.notify.routing import routes_that_cannot_match
from kubejit.notify_settings import NotificationSettings
from kubejit.policy.load import load_policy_file
from kubejit.policy.model import Policy
from kubejit.server.audit_delivery import AuditDelivery
from kubejit.server.audit_records import checkpoint_worker, record_start
from kubejit.server.auth_failures import AuthFailureSummary
from kubejit.server.deps import Services
from kubejit.server.exchange_wiring import build_exchange
from kubejit.server.file_watch import digest
from kubejit.server.notifications import Notifications, WakeSignal, grant_lookup
from kubejit.server.policy_reload import PolicyReload
from kubejit.server.rate_limits import RateLimits, RequestLimiter
from kubejit.server.schemas import ClusterOut
from kubejit.server.web_wiring import build_web
from kubejit.server.workers import Worker, start_workers
from kubejit.store.audit_cursors import SqlCursorStore
from kubejit.store.audit_log import observe_committed
from kubejit.store.audit_store import SqlAuditStore
from kubejit.store.checkpoints import Checkpointer
from kubejit.store.engine import create_store_engine
from kubejit.store.locks import SqlLockStore
from kubejit.store.migrate import check_at_head, upgrade
from kubejit.store.seen_tokens import SqlSeenTokenIds
from kubejit.store.sqlite_claim import claim_sqlite_database
from kubejit.store.users import SqlUserDirectory
from kubejit.store.waking_grant_store import WakingGrantStore
from kubejit.store.web_sessions import SqlWebSessionStore

log = logging.getLogger(__name__)

#: Where Kubernetes tells a pod its namespace.
_SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def build_services(settings: Settings, *, clock: Clock | None = None, workers: bool = True) -> Services:
    """Everything the broker runs on; ``Services.on_shutdown`` closes it, in the reverse order.

    Each resource registers its own close as it is created, so a failure half-way through building
    (a missing kubeconfig, no identity issuer) closes what was built before it and leaks nothing.
    """
    clock = clock or SystemClock()
    loaded_sha256 = None
    with contextlib.suppress(OSError):  # a missing file is reported by the load, with its hint
        loaded_sha256 = digest([settings.policy_file.read_bytes()])  # before the load: see PolicyReload
    policy = load_policy_file(str(settings.policy_file), protected_namespaces=_kubejit_namespaces(settings))
    with contextlib.ExitStack() as built:
        services = _build(settings, policy, clock=clock, workers=workers, built=built)
        _watch_policy(settings, services, loaded_sha256, clock=clock, workers=workers, built=built)
        services.on_shutdown.append(built.pop_all().close)
    return services


def _build(
    settings: Settings, policy: Policy, *, clock: Clock, workers: bool, built: contextlib.ExitStack
) -> Services:
    """Build in order; closes run last-built first: workers stop, the final checkpoint is signed,
    then clients, sinks and clusters close, and the engine goes last."""
    engine = create_store_engine(settings.store_url)
    built.callback(engine.dispose)
    built.callback(claim_sqlite_database(engine))  # before migrating: a second broker changes nothing
    observe_committed(engine, metrics.observe_events)  # /metrics counters follow the audit log
    upgrade(engine)
    wake = WakeSignal()  # grant writes wake this replica's notification workers
    store = WakingGrantStore(engine, clock=clock, wake=wake)
    audit = SqlAuditStore(engine)
    cluster_issuer = _cluster_issuer(settings, clock=clock)
    adapters = {c.name: built.enter_context(_adapter(c, settings, cluster_issuer)) for c in settings.clusters}
    clusters: dict[str, ClusterAdapter] = dict(adapters)
    delivery = AuditDelivery.build(settings.audit, cursors=SqlCursorStore(engine, clock=clock), clock=clock)
    built.callback(delivery.close)
    notifications = Notifications.build(
        settings.notifications,
        cursors=SqlCursorStore(engine, clock=clock),
        clock=clock,
        public_url=settings.broker.url,
        lookup=grant_lookup(store.get),
        email_of=SqlUserDirectory(engine, clock=clock).email,
    )
    built.callback(notifications.close)
    _warn_of_unmatchable_routes(settings.notifications, policy)
    service = GrantService(
        store=store,
        audit=audit,
        clusters=clusters,
        policy=policy,
        clock=clock,
        activation_gate=delivery.gate,
        locks=SqlLockStore(engine),
        max_open_grants=settings.broker.max_open_grants_per_person,
    )
    if not settings.dev_issuer.enabled and not settings.identity.issuers:
        raise ConfigError(
            "no identity issuer is configured",
            hint="Add your IdP under identity.issuers (docs/identity.md), or enable the dev issuer for "
            "trials (devIssuer.enabled: true).",
        )
    dev = None
    if settings.dev_issuer.enabled:
        dev = DevIssuer(
            users={u: frozenset(g) for u, g in settings.dev_issuer.users.items()},
            key=load_or_create_key(settings.data_dir / "dev-issuer-key.pem"),
            issuer=settings.broker.url + "/dev",
            clock=clock,
            token_ttl_seconds=settings.dev_issuer.token_ttl_seconds,
        )
    issuers = build_issuers(settings.identity.issuers, clock=clock)
    built.callback(issuers.close)
    exchange, close_exchange = build_exchange(
        settings, grants=service, spent=SqlSeenTokenIds(engine), clock=clock
    )
    built.callback(close_exchange)
    services = Services(
        grants=service,
        authenticator=IssuerSet(issuers.verifiers, dev=dev, dev_issuer_url=dev.rules.issuer if dev else None),
        clusters=[_cluster_out(adapters[c.name], c.audience) for c in settings.clusters],
        dev_issuer=dev,
        exchange=exchange,
        users=SqlUserDirectory(engine, clock=clock),
        login_offers=login_offers(settings.identity.issuers),
        audit=audit,
        cluster_issuer=cluster_issuer,
        public_url=settings.broker.url,
    )
    services.ready_checks.update(
        store=lambda: check_at_head(engine),
        policy=lambda: None if service.policy is not None else _no_policy(),
    )
    limits = settings.broker.rate_limits
    services.limiter = RequestLimiter(
        RateLimits(
            per_source_per_minute=limits.per_source_per_minute,
            per_principal_per_minute=limits.per_principal_per_minute,
            auth_failures_per_source_per_minute=limits.auth_failures_per_source_per_minute,
        )
    )
    services.auth_failures = auth_failures = AuthFailureSummary(
        audit.record, clock=clock, interval_seconds=limits.auth_failure_summary_seconds
    )
    record_start(audit, settings, clock=clock)
    checkpointer = Checkpointer(engine, load_or_create_signing_key(settings.checkpoint_key_path), clock=clock)
    # Closed before the engine, after every worker: sign the head the broker leaves behind.
    built.callback(checkpointer.final)
    if workers:
        _start_workers(settings, service, checkpointer, auth_failures, built)
        delivery.start()
        built.callback(delivery.stop)  # first of all at shutdown: the sinks' leases go to other replicas
        notifications.start(sweep_interval=settings.workers.sweep_interval_seconds, wake=wake)
        built.callback(notifications.stop)  # like the sinks: channel leases go to other replicas
    services.audit_status = delivery.status
    services.web = build_web(
        settings,
        services,
        sessions=SqlWebSessionStore(engine),
        audit=audit,
        dev=dev,
        issuers=issuers,
        clock=clock,
        built=built,
        workers=workers,
    )
    return services


def _adapter(
    c: ClusterSettings, settings: Settings, cluster_issuer: ClusterTokenIssuer | None
) -> KubeClusterAdapter:
    return build_adapter(
        c.name,
        kubeconfig=str(c.kubeconfig) if c.kubeconfig else None,
        context=c.context,
        in_cluster=c.in_cluster,
        grant_namespace=settings.grant_namespace,
        audience=c.audience,
        jwt_issuer=cluster_issuer if c.credential_mode == "jwt" else None,
    )


def _cluster_issuer(settings: Settings, *, clock: Clock) -> ClusterTokenIssuer | None:
    """kubejit as the issuer of cluster tokens, when any cluster is in jwt mode (docs/jwt-mode.md)."""
    if not any(c.credential_mode == "jwt" for c in settings.clusters):
        return None
    lifetime = settings.jwt_issuer.token_lifetime_minutes * 60
    keys = ClusterKeyRing(
        settings.jwt_key_dir,
        clock=clock,
        overlap_seconds=lifetime,
        rotate_after_seconds=settings.jwt_issuer.rotate_after_hours * 3600,
    )
    return ClusterTokenIssuer(
        issuer_url=settings.jwt_issuer_url, keys=keys, lifetime_seconds=lifetime, clock=clock
    )


def _start_workers(
    settings: Settings,
    service: GrantService,
    checkpointer: Checkpointer,
    auth_failures: AuthFailureSummary,
    built: contextlib.ExitStack,
) -> None:
    running = start_workers(
        service,
        sweep_interval=settings.workers.sweep_interval_seconds,
        reconcile_interval=settings.workers.reconcile_interval_seconds,
    )
    for worker in running:
        built.callback(worker.stop)
    summaries = max(1.0, settings.broker.rate_limits.auth_failure_summary_seconds)
    started = [
        checkpoint_worker(checkpointer, interval=settings.audit.checkpoint_interval_seconds),
        Worker("auth-failure-summaries", auth_failures.flush_due, interval=summaries),
    ]
    for worker in started:
        worker.start()
        built.callback(worker.stop)


def _watch_policy(
    settings: Settings,
    services: Services,
    loaded_sha256: str | None,
    *,
    clock: Clock,
    workers: bool,
    built: contextlib.ExitStack,
) -> None:
    """Policy hot-reload (docs/deploy.md): a new valid file is applied, an invalid one refused."""
    reload = PolicyReload(
        settings.policy_file,
        service=services.grants,
        audit=services.grants.audit,
        clock=clock,
        protected_namespaces=_kubejit_namespaces(settings),
        loaded_sha256=loaded_sha256,
        on_applied=lambda policy: _warn_of_unmatchable_routes(settings.notifications, policy),
    )
    services.policy_status = reload.status
    interval = settings.workers.policy_reload_interval_seconds
    if workers and interval > 0:
        watcher = Worker("policy-reload", reload.tick, interval=interval)
        watcher.start()
        built.callback(watcher.stop)


def _kubejit_namespaces(settings: Settings) -> frozenset[str]:
    """brokerNamespace and grantNamespace, and, in a pod, the namespace the pod really runs in."""
    namespaces = settings.kubejit_namespaces
    if any(c.in_cluster for c in settings.clusters):
        # Not in a pod after all (OSError): building the in-cluster adapter says so.
        with contextlib.suppress(OSError):
            namespaces |= {_SA_NAMESPACE_FILE.read_text().strip()} - {""}
    return namespaces


def _cluster_out(adapter: KubeClusterAdapter, audience: str) -> ClusterOut:
    endpoint = adapter.server_info()
    return ClusterOut(
        name=adapter.name,
        audience=audience,
        server=endpoint.server,
        certificate_authority_data=endpoint.certificate_authority_data,
    )


def _no_policy() -> None:
    raise ConfigError("no policy is loaded", hint="Check the policy file the config names.")


def _warn_of_unmatchable_routes(settings: NotificationSettings, policy: Policy) -> None:
    """At start and after each policy reload: a route that names a rule or group the policy lacks
    never sends (logged, not refused: the policy may be about to gain it)."""
    rules = frozenset([r.name for r in policy.rules] + [w.name for w in policy.workloads])
    groups = frozenset(g for r in policy.rules for g in (*r.approver_groups, *r.reviewers))
    for problem in routes_that_cannot_match(settings, rules=rules, groups=groups):
        log.warning("%s: no notice will match that condition", problem)
