"""Probes for an orchestrator: ``/livez`` (the process answers) and ``/readyz`` (it can serve).

Unauthenticated, never rate-limited, out of the OpenAPI document. Readiness runs the checks the
wiring registered (store reachable, migrations at head, policy loaded); a failed check names itself
and its reason and answers 503 so a load balancer sends traffic to another replica. Clusters are
reported in the body but never make a replica unready: a cluster outage is not the broker's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from kubejit.server.deps import Services, services

#: A named readiness check: returns nothing when fine, raises when the replica cannot serve.
ReadyCheck = Callable[[], None]

PROBE_PATHS = frozenset({"/livez", "/readyz"})

router = APIRouter(include_in_schema=False)


@router.get("/livez")
def livez() -> dict[str, str]:
    return {"status": "ok"}


def run_checks(checks: Mapping[str, ReadyCheck]) -> dict[str, str]:
    """Each check's outcome: ``ok`` or the reason it failed (one failure never hides another)."""
    outcome: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
        except Exception as exc:
            outcome[name] = f"failed: {type(exc).__name__}: {exc}"[:300]
        else:
            outcome[name] = "ok"
    return outcome


@router.get("/readyz")
def readyz(request: Request, svc: Services = Depends(services)) -> JSONResponse:
    del request
    checks = run_checks(svc.ready_checks)
    ready = all(value == "ok" for value in checks.values())
    clusters = {
        cluster: ("reachable" if up else "unreachable")
        for cluster, up in svc.grants.reachability.snapshot().items()
    }
    body: dict[str, object] = {"status": "ready" if ready else "unready", "checks": checks}
    body["clusters"] = clusters
    if svc.policy_status is not None:
        body["policy"] = svc.policy_status()
    return JSONResponse(body, status_code=200 if ready else 503)
