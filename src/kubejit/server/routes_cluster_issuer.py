"""kubejit as the OIDC issuer clusters in jwt mode trust: its discovery document and JWKS.

Public by design (public keys only), unauthenticated, out of the OpenAPI document; 404 when no
cluster is in jwt mode. Clusters' API servers fetch them over HTTPS (``broker.tls``), at start and
whenever a token names a key id they do not know yet (after a rotation).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from kubejit.errors import NotFound
from kubejit.identity.cluster_tokens import DISCOVERY_PATH, JWKS_PATH, ClusterTokenIssuer
from kubejit.server.deps import Services, services

#: The issuer's path under the broker's URL (``Settings.jwt_issuer_url``).
ISSUER_PATH = "/k8s"
#: API servers re-read the keys on an unknown ``kid``; caches in between may keep them this long.
_CACHE = "public, max-age=60"

router = APIRouter(include_in_schema=False)


def _issuer(svc: Services) -> ClusterTokenIssuer:
    if svc.cluster_issuer is None:
        raise NotFound(
            "no cluster is in jwt mode on this broker",
            hint="Set credentialMode: jwt on a cluster (docs/jwt-mode.md).",
        )
    return svc.cluster_issuer


@router.get(ISSUER_PATH + DISCOVERY_PATH)
def discovery(svc: Services = Depends(services)) -> JSONResponse:
    return JSONResponse(_issuer(svc).discovery(), headers={"cache-control": _CACHE})


@router.get(ISSUER_PATH + JWKS_PATH)
def jwks(svc: Services = Depends(services)) -> JSONResponse:
    body = _issuer(svc).keys.jwks()
    return JSONResponse(body, media_type="application/jwk-set+json", headers={"cache-control": _CACHE})
