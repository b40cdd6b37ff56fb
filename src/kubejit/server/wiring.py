"""Build the broker's services from validated settings: the only place that knows every adapter."""

from __future__ import annotations

import contextlib
from pathlib import Path

from kubejit.audit.checkpoint import load_or_create_signing_key
from kubejit.clock import Clock, SystemClock
from kubejit.clusters.adapter import KubeClusterAdapter
from kubejit.clusters.registry import build_adapter
from kubejit.config import Settings
from kubejit.errors import ConfigError
from kubejit.grants.ports import ClusterAdapter
from kubejit.grants.service import GrantService
from kubejit.identity.dev_issuer import DevIssuer, load_or_create_key
from kubejit.identity.issuers import build_issuers, login_offers
from kubejit.identity.oidc import IssuerSet
from kubejit.policy.load import load_policy_file
from kubejit.server.audit_delivery import AuditDelivery
from kubejit.server.audit_records import checkpoint_worker, record_start
from kubejit.server.auth_failures import AuthFailureSummary
from kubejit.server.deps import Services
from kubejit.server.exchange_wiring import build_exchange
from kubejit.server.rate_limits import RateLimits, RequestLimiter
from kubejit.server.schemas import ClusterOut
from kubejit.server.workers import Worker, start_workers
from kubejit.store.audit_cursors import SqlCursorStore
from kubejit.store.checkpoints import Checkpointer
from kubejit.store.engine import create_store_engine
from kubejit.store.grant_store import SqlGrantStore
from kubejit.store.locks import SqlLockStore
from kubejit.store.migrate import upgrade
from kubejit.store.seen_tokens import SqlSeenTokenIds
from kubejit.store.users import SqlUserDirectory

#: Where Kubernetes tells a pod its namespace.
_SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def build_services(settings: Settings, *, clock: Clock | None = None, workers: bool = True) -> Services:
    clock = clock or SystemClock()
    policy = load_policy_file(str(settings.policy_file), protected_namespaces=_kubejit_namespaces(settings))
    engine = create_store_engine(settings.store_url)
    upgrade(engine)
    store = SqlGrantStore(engine, clock=clock)
    adapters = {
        c.name: build_adapter(
            c.name,
            kubeconfig=str(c.kubeconfig) if c.kubeconfig else None,
            context=c.context,
            in_cluster=c.in_cluster,
            grant_namespace=settings.grant_namespace,
            audience=c.audience,
        )
        for c in settings.clusters
    }
    clusters: dict[str, ClusterAdapter] = dict(adapters)
    delivery = AuditDelivery.build(settings.audit, cursors=SqlCursorStore(engine, clock=clock), clock=clock)
    service = GrantService(
        store=store,
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
    exchange, close_exchange = build_exchange(
        settings, grants=service, spent=SqlSeenTokenIds(engine), clock=clock
    )
    services = Services(
        grants=service,
        authenticator=IssuerSet(issuers.verifiers, dev=dev, dev_issuer_url=dev.rules.issuer if dev else None),
        clusters=[_cluster_out(adapters[c.name], c.audience) for c in settings.clusters],
        dev_issuer=dev,
        exchange=exchange,
        users=SqlUserDirectory(engine, clock=clock),
        login_offers=login_offers(settings.identity.issuers),
        on_shutdown=[*(a.close for a in adapters.values()), issuers.close, close_exchange, engine.dispose],
    )
    limits = settings.broker.rate_limits
    services.limiter = RequestLimiter(
        RateLimits(
            per_source_per_minute=limits.per_source_per_minute,
            per_principal_per_minute=limits.per_principal_per_minute,
            auth_failures_per_source_per_minute=limits.auth_failures_per_source_per_minute,
        )
    )
    services.auth_failures = AuthFailureSummary(
        store.record, clock=clock, interval_seconds=limits.auth_failure_summary_seconds
    )
    record_start(store, settings, clock=clock)
    checkpointer = Checkpointer(engine, load_or_create_signing_key(settings.checkpoint_key_path), clock=clock)
    # The last thing before the engine closes: sign the head the broker leaves behind.
    services.on_shutdown.insert(-1, checkpointer.final)
    if workers:
        running = start_workers(
            service,
            sweep_interval=settings.workers.sweep_interval_seconds,
            reconcile_interval=settings.workers.reconcile_interval_seconds,
        )
        interval = settings.audit.checkpoint_interval_seconds
        running.append(checkpoint_worker(checkpointer, interval=interval))
        running[-1].start()
        summaries = max(1.0, limits.auth_failure_summary_seconds)
        running.append(Worker("auth-failure-summaries", services.auth_failures.flush_due, interval=summaries))
        running[-1].start()
        services.on_shutdown[:0] = [w.stop for w in running]
        delivery.start()
    services.on_shutdown.insert(0, delivery.close)
    services.audit_status = delivery.status
    return services


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
