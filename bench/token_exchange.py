"""CI/CD token exchange benchmarks against a real kube-apiserver started here. Prints figures; never fails.

1. A pipeline's access, end to end over the broker's HTTP API (in process, real SQLite, real cluster):
   `POST /v1/token-exchange` (job token verified against a local OIDC issuer's JWKS, jti spent,
   workload policy, grant activated, token minted, kubeconfig built) against what a person's client
   does for the same access with the dev issuer (`POST /v1/grants` then `POST /v1/grants/{id}/token`),
   interleaved; ratio of medians.
2. What exchange adds before the cluster is touched: job token verification (RS256, cached keys) and
   the jti ledger insert on SQLite, per call.
3. Workload policy evaluation with 10 and 1,000 workload rules (the matching rule last).

    .venv/bin/python bench/token_exchange.py [--rounds 30] [--calls 300]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from kubejit.clock import SystemClock
from kubejit.clusters.adapter import KubeClusterAdapter
from kubejit.clusters.bootstrap import install_broker
from kubejit.grants.exchange import WorkloadExchange, WorkloadIssuer
from kubejit.grants.service import GrantService
from kubejit.identity.claims import ClaimMapping
from kubejit.identity.dev_issuer import DevIssuer, load_or_create_key
from kubejit.identity.discovery import JwksCache
from kubejit.identity.oidc import OIDCIssuer, OIDCVerifier
from kubejit.identity.workload import workload_principal
from kubejit.policy.load import parse_policy
from kubejit.policy.workloads import WorkloadTarget, evaluate_workload
from kubejit.server.app import create_app
from kubejit.server.deps import Services
from kubejit.server.schemas import ClusterOut
from kubejit.store import create_store_engine, upgrade
from kubejit.store.audit_store import SqlAuditStore
from kubejit.store.grant_store import SqlGrantStore
from kubejit.store.seen_tokens import SqlSeenTokenIds
from kubejit.testing.clients import admin_client
from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.oidc_issuer import LocalIssuer

AUDIENCE = "https://kubejit.bench"
POLICY = """
roles: {view: {clusterRole: view}}
rules:
  - name: people
    groups: [dev]
    clusters: ["*"]
    namespaces: ["bench-*"]
    roles: [view]
    approval: auto
workloads:
  - name: pipeline
    issuer: github
    github: {repository_id: "1", ref: refs/heads/main}
    clusters: ["*"]
    namespaces: ["bench-*"]
    roles: [view]
"""


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def job_claims() -> dict[str, Any]:
    return {
        "aud": AUDIENCE,
        "sub": "repo:acme/app:ref:refs/heads/main",
        "repository_id": "1",
        "ref": "refs/heads/main",
        "event_name": "push",
        "jti": secrets.token_hex(16),
    }


def bench_end_to_end(
    http: TestClient, issuer: LocalIssuer, dev: DevIssuer, cluster: str, rounds: int
) -> None:
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "audience": cluster,
        "scope": "namespace:bench-a",
    }
    person = {"authorization": f"Bearer {dev.issue('dana')}"}
    body = {"cluster": cluster, "namespaces": ["bench-a"], "role": "view"}

    def exchange() -> None:
        answer = http.post("/v1/token-exchange", data={**form, "subject_token": issuer.issue(job_claims())})
        assert answer.status_code == 200, answer.text

    def request_then_token() -> None:
        grant = http.post("/v1/grants", json=body, headers=person)
        assert grant.status_code == 201, grant.text
        token = http.post(f"/v1/grants/{grant.json()['id']}/token", headers=person)
        assert token.status_code == 200, token.text

    exchange()  # warm: discovery + JWKS fetched once, then cached
    ex, people = [], []
    for _ in range(rounds):
        ex.append(timed(exchange))
        people.append(timed(request_then_token))
    e, p = statistics.median(ex), statistics.median(people)
    print(f"1. access for one job, HTTP API to usable token, median of {rounds}, interleaved:")
    print(f"   token exchange (1 call, kubeconfig included)   {ms(e)}")
    print(f"   person: request + token (2 calls)              {ms(p)}")
    print(f"   ratio exchange / person                        {e / p:8.2f}x")


def bench_overhead(verifier: OIDCVerifier, issuer: LocalIssuer, ledger: SqlSeenTokenIds, calls: int) -> None:
    tokens = [issuer.issue(job_claims()) for _ in range(calls)]
    started = time.perf_counter()
    for token in tokens:
        verifier.verify(token, audience=AUDIENCE)
    verify = (time.perf_counter() - started) / calls
    now = datetime.now(UTC)
    started = time.perf_counter()
    for n in range(calls):
        ledger.first_use(issuer=issuer.url, jti=f"bench-{n}", keep_until=now + timedelta(minutes=10), now=now)
    spend = (time.perf_counter() - started) / calls
    print(f"2. per exchange, before any cluster call ({calls} calls):")
    print(f"   verify job token (RS256, cached JWKS)          {ms(verify)}")
    print(f"   spend jti (SQLite insert + purge, 1 txn)        {ms(spend)}")


def bench_policy(calls: int) -> None:
    principal = workload_principal("github", {**job_claims(), "repository_id": "999"})
    now = datetime.now(UTC)
    target = WorkloadTarget(cluster="c", namespaces=("bench-a",), role="view")
    figures = {}
    for count in (10, 1000):
        rules = "".join(
            f"""
  - name: r{n}
    issuer: github
    github: {{repository_id: "{n if n < count - 1 else 999}"}}
    clusters: ["*"]
    namespaces: ["bench-*"]
    roles: [view]
"""
            for n in range(count)
        )
        policy = parse_policy("roles: {view: {clusterRole: view}}\nrules: []\nworkloads:" + rules)
        started = time.perf_counter()
        for _ in range(calls):
            assert evaluate_workload(policy, principal, target, now=now).decision.allowed
        figures[count] = (time.perf_counter() - started) / calls
    print(f"3. workload policy evaluation, matching rule last ({calls} calls):")
    for count, seconds in figures.items():
        print(f"   {count:5d} rules                                    {ms(seconds)}")
    print(f"   ratio 1000 / 10 rules                          {figures[1000] / figures[10]:8.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubejit-bench-") as tmp, LocalIssuer() as issuer:
        work = Path(tmp)
        with ControlPlane(work / "cluster", name="bench") as plane:
            with admin_client(plane) as admin:
                creds = install_broker(
                    admin, cluster=plane.name, out=work / "broker.kubeconfig", namespaces=("bench-a",)
                )
            adapter = KubeClusterAdapter.from_kubeconfig(
                plane.name,
                kubeconfig=str(creds.kubeconfig_path),
                grant_namespace="kubejit-grants",
                audience=plane.audience,
            )
            engine = create_store_engine(f"sqlite:///{work / 'kubejit.db'}")
            upgrade(engine)
            clock = SystemClock()
            service = GrantService(
                store=SqlGrantStore(engine),
                audit=SqlAuditStore(engine),
                clusters={plane.name: adapter},
                policy=parse_policy(POLICY),
                clock=clock,
            )
            http_client = httpx.Client(timeout=5)
            jwks = JwksCache(issuer.url, http=http_client)
            verifier = OIDCVerifier(
                OIDCIssuer(url=issuer.url, audience=AUDIENCE, mapping=ClaimMapping("github", "github:")),
                keys=jwks,
                clock=clock,
            )
            ledger = SqlSeenTokenIds(engine)
            exchange = WorkloadExchange(
                grants=service,
                issuers=[WorkloadIssuer(name="github", url=issuer.url, audience=AUDIENCE, verifier=verifier)],
                spent=ledger,
            )
            dev = DevIssuer(
                users={"dana": frozenset({"dev"})},
                key=load_or_create_key(work / "dev.pem"),
                issuer="http://bench/dev",
                clock=clock,
            )
            endpoint = adapter.server_info()
            cluster = ClusterOut(
                name=plane.name,
                audience=plane.audience,
                server=endpoint.server,
                certificate_authority_data=endpoint.certificate_authority_data,
            )
            services = Services(grants=service, authenticator=dev, clusters=[cluster], exchange=exchange)
            with TestClient(create_app(services)) as http:
                bench_end_to_end(http, issuer, dev, plane.name, args.rounds)
            bench_overhead(verifier, issuer, ledger, args.calls)
            bench_policy(args.calls)
            http_client.close()
            adapter.close()
            engine.dispose()


if __name__ == "__main__":
    main()
