"""/livez and /readyz: unauthenticated, unlimited, out of OpenAPI; readiness follows the store."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from kubejit.server.app import create_app
from kubejit.server.deps import Services
from kubejit.server.rate_limits import UNLIMITED_PATHS
from kubejit.store.engine import create_store_engine
from kubejit.store.migrate import check_at_head, upgrade
from tests.unit.server.test_api import World, world

__all__ = ["world"]  # the fixture, shared with test_api


def test_livez_and_readyz_answer_without_credentials(world: World) -> None:
    assert world.http.get("/livez").json() == {"status": "ok"}
    ready = world.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert world.http.get("/healthz").status_code == 200


def test_probes_are_not_in_openapi_nor_rate_limited(world: World) -> None:
    paths = world.http.get("/openapi.json").json()["paths"]
    assert not {"/livez", "/readyz", "/healthz"} & set(paths)
    assert {"/livez", "/readyz"} <= UNLIMITED_PATHS


def test_readyz_is_503_with_the_reason_when_the_store_is_behind(world: World, tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'kubejit.db'}")
    try:
        services: Services = world.services
        services.ready_checks["store"] = lambda: check_at_head(engine)
        with TestClient(create_app(services)) as http:
            behind = http.get("/readyz")
            assert behind.status_code == 503
            assert behind.json()["status"] == "unready"
            assert "revision none" in behind.json()["checks"]["store"]
            assert http.get("/livez").status_code == 200  # alive all the same: do not restart it
            upgrade(engine)
            ready = http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["checks"] == {"store": "ok"}
    finally:
        engine.dispose()


def test_readyz_reports_clusters_without_requiring_them(world: World) -> None:
    world.services.grants.reachability.unreachable("dev", "connection refused")
    ready = world.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["clusters"] == {"dev": "unreachable"}
