"""The broker's REST API: builds the FastAPI app from ready services.

Routes are sync on purpose: the service, the store and the cluster client are sync, and FastAPI runs
sync routes in its thread pool. Everything the routes need comes from ``app.state.services``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from kubejit import __version__
from kubejit import metrics as process_metrics
from kubejit.server import (
    health,
    problems,
    routes_cluster_issuer,
    routes_exchange,
    routes_grants,
    routes_identity,
    routes_locks,
    routes_reviews,
    routes_users,
)
from kubejit.server.deps import Services
from kubejit.server.http_metrics import MeasureRequests
from kubejit.server.limits import BodySizeLimit
from kubejit.server.origin import RecordOrigin
from kubejit.server.rate_limits import LimitSources
from kubejit.server.request_ids import RequestIds
from kubejit.web import routes as web_routes


def create_app(
    services: Services,
    *,
    max_body_bytes: int = 64 * 1024,
    expose_metrics: bool = True,
    expose_api_docs: bool = True,
) -> FastAPI:
    """The app; ``expose_*`` off makes those unauthenticated paths 404 (config decides: loopback only)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if services.auth_failures is not None:
            services.auth_failures.flush()  # before the engine closes: no counted failure is lost
        for stop in services.on_shutdown:
            stop()

    app = FastAPI(
        lifespan=lifespan,
        title="kubejit",
        version=__version__,
        description="Just-in-time, short-lived, audited access to Kubernetes.",
        openapi_url="/openapi.json" if expose_api_docs else None,
        docs_url="/docs" if expose_api_docs else None,
        redoc_url="/redoc" if expose_api_docs else None,
    )
    app.state.services = services
    problems.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_middleware(RecordOrigin)
    app.add_middleware(LimitSources, limiter=lambda: services.limiter)
    app.add_middleware(MeasureRequests)  # rate-limit refusals are timed too
    app.add_middleware(RequestIds)  # outermost: every answer carries X-Request-ID
    app.include_router(routes_grants.router)
    app.include_router(routes_identity.router)
    app.include_router(routes_users.router)
    app.include_router(routes_exchange.router)
    app.include_router(routes_locks.router)
    app.include_router(routes_reviews.router)
    app.include_router(health.router)
    app.include_router(routes_cluster_issuer.router)
    if services.web is not None:
        web_routes.install(app, services.web)
    registry = CollectorRegistry()
    by_state = Gauge("kubejit_grants", "Grants in the store by state", ["state"], registry=registry)
    sink_gauges = _audit_sink_gauges(registry)
    reachable = Gauge(
        "kubejit_cluster_reachable",
        "1 if the cluster answered the reconciler's last look, 0 during an outage",
        ["cluster"],
        registry=registry,
    )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def metrics() -> PlainTextResponse:
        for state, count in services.grants.count_by_state().items():
            by_state.labels(state=state).set(count)
        for row in services.audit_status() if services.audit_status else ():
            for gauge, value in zip(
                sink_gauges, (row.lag_events, row.lag_seconds, row.attempts), strict=True
            ):
                gauge.labels(sink=row.sink).set(value)
        for cluster, up in services.grants.reachability.snapshot().items():
            reachable.labels(cluster=cluster).set(1 if up else 0)
        text = generate_latest(registry) + generate_latest(process_metrics.REGISTRY)
        return PlainTextResponse(text.decode(), media_type=CONTENT_TYPE_LATEST)

    if expose_metrics:
        app.get("/metrics", include_in_schema=False)(metrics)
    return app


def _audit_sink_gauges(registry: CollectorRegistry) -> tuple[Gauge, Gauge, Gauge]:
    """Delivery lag per audit sink: alert on these when a SIEM stops receiving."""
    return (
        Gauge(
            "kubejit_audit_sink_lag_events", "Audit events not yet acknowledged", ["sink"], registry=registry
        ),
        Gauge(
            "kubejit_audit_sink_lag_seconds",
            "Age of the oldest unacknowledged event",
            ["sink"],
            registry=registry,
        ),
        Gauge(
            "kubejit_audit_sink_failed_attempts",
            "Failed deliveries since the last success",
            ["sink"],
            registry=registry,
        ),
    )
