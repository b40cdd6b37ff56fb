"""Grant lifecycle benchmarks against a real kube-apiserver started here. Prints figures; never fails.

1. Activation latency: approve → usable token through kubejit, against the same Kubernetes calls made
   raw (ServiceAccount + RoleBinding + TokenRequest, one after another) on the same API server,
   interleaved; ratio of medians. Two references: the calls as the broker's own identity (the same
   objects, so the same admission policy and RBAC ``bind`` checks kubejit pays) and as cluster-admin
   (which skips both). ``--profile N`` prints the N costliest functions of kubejit's rounds (cProfile,
   CPU time), to see where the milliseconds go.
2. Expiry precision: a grant's end time → its objects gone from the cluster (p50/p99), with the sweeper
   running as in `kubejit serve`.
3. With 10,000 grants in the store: a sweeper tick, and the list API, against the same with 100 grants.

    .venv/bin/python bench/grants.py [--rounds 30] [--expiries 20] [--grants 10000] [--profile 25]
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from lightkube import ApiError, Client, KubeConfig
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.core_v1 import ServiceAccount
from lightkube.resources.rbac_authorization_v1 import RoleBinding

from kubejit.clock import SystemClock
from kubejit.clusters.adapter import KubeClusterAdapter
from kubejit.clusters.bootstrap import install_broker
from kubejit.clusters.objects import object_name, role_bindings_for, service_account_for, token_request_for
from kubejit.grants import lifecycle
from kubejit.grants.model import Grant
from kubejit.grants.service import GrantService
from kubejit.identity.dev_issuer import DevIssuer, load_or_create_key
from kubejit.identity.principal import Principal
from kubejit.ids import GrantId
from kubejit.policy.load import parse_policy
from kubejit.policy.model import AccessRequest
from kubejit.server.app import create_app
from kubejit.server.deps import Services
from kubejit.server.workers import start_workers
from kubejit.store import SqlAuditStore, SqlGrantStore, create_store_engine, upgrade
from kubejit.store.locks import SqlLockStore
from kubejit.testing.clients import admin_client
from kubejit.testing.controlplane import ControlPlane

POLICY = """
roles: {view: {clusterRole: view}}
adminGroups: [admins]
rules:
  - name: auto
    groups: [dev]
    clusters: ["*"]
    namespaces: ["bench-*"]
    roles: [view]
    duration: {default: 1h, max: 4h}
    approval: auto
  - name: approved
    groups: [ops]
    clusters: ["*"]
    namespaces: ["bench-*"]
    roles: [view]
    duration: {default: 1h, max: 4h}
    approval: {approvers: 1, groups: [sre]}
"""
DEV = Principal("dana", frozenset({"dev"}))
OPS = Principal("olga", frozenset({"ops"}))
SRE = Principal("sam", frozenset({"sre"}))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def raw_activation(client: Client, n: int, *, namespace: str, audience: str) -> None:
    """What kubejit does on activation, as bare API calls by cluster-admin (no store, audit or checks)."""
    name = f"raw-{n}"
    client.create(ServiceAccount(metadata=ObjectMeta(name=name, namespace="kubejit-grants")))
    client.create(
        RoleBinding(
            metadata=ObjectMeta(name=name, namespace=namespace),
            roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
            subjects=[Subject(kind="ServiceAccount", name=name, namespace="kubejit-grants")],
        )
    )
    request = ServiceAccount.Token(
        metadata=ObjectMeta(name=name), spec=TokenRequestSpec(audiences=[audience], expirationSeconds=3600)
    )
    client.create(request, name, namespace="kubejit-grants")


def raw_activation_as_broker(client: Client, grant: Grant, *, audience: str) -> None:
    """kubejit's own objects for ``grant``, sent one after another with the broker's credentials."""
    client.create(service_account_for(grant, namespace="kubejit-grants"), namespace="kubejit-grants")
    for binding in role_bindings_for(grant, sa_namespace="kubejit-grants"):
        assert isinstance(binding, RoleBinding) and binding.metadata is not None
        client.create(binding, namespace=binding.metadata.namespace)
    request = token_request_for(grant, audience=audience, expiration_seconds=3600)
    client.create(request, object_name(grant.id), namespace="kubejit-grants")


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def bench_activation(
    service: GrantService, broker: Client, admin: Client, plane: ControlPlane, rounds: int, profile: int
) -> None:
    access = AccessRequest(cluster=plane.name, namespaces=("bench-a",), role="view", reason="bench")
    decision = service.check(OPS, access)
    profiler = cProfile.Profile(time.process_time)
    kubejit: list[float] = []
    as_broker: list[float] = []
    as_admin: list[float] = []
    for n in range(rounds):
        pending = service.request(OPS, access)

        def activate(grant_id: GrantId = pending.id) -> None:
            if profile:
                profiler.enable()
            service.approve(SRE, grant_id)
            service.issue_token(OPS, grant_id)
            profiler.disable()

        kubejit.append(timed(activate))
        raw_grant = lifecycle.new_grant(
            GrantId(f"r{n:012x}"), principal=OPS, request=access, decision=decision, now=service.clock.now()
        )
        as_broker.append(
            timed(lambda g=raw_grant: raw_activation_as_broker(broker, g, audience=plane.audience))
        )
        as_admin.append(
            timed(lambda n=n: raw_activation(admin, n, namespace="bench-a", audience=plane.audience))
        )
    k, b, a = statistics.median(kubejit), statistics.median(as_broker), statistics.median(as_admin)
    print(f"activation (approve → usable token), median of {rounds}, interleaved:")
    print(f"  kubejit                     {ms(k)}   p90 {ms(pct(kubejit, 0.9))}")
    print(
        f"  raw calls as the broker     {ms(b)}   p90 {ms(pct(as_broker, 0.9))}   kubejit/raw {k / b:5.2f}x"
    )
    print(f"  raw calls as cluster-admin  {ms(a)}   p90 {ms(pct(as_admin, 0.9))}   kubejit/raw {k / a:5.2f}x")
    print(
        "  (goal ≤ 1.3x; the broker's calls pass its admission policy and RBAC bind checks, admin's do not)"
    )
    if profile:
        print(f"  profile of kubejit's {rounds} activations (CPU time, the {profile} costliest by own time):")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(profile)


def bench_expiry(service: GrantService, admin: Client, plane: ControlPlane, count: int) -> None:
    workers = start_workers(service, sweep_interval=0.5, reconcile_interval=3600)
    access = AccessRequest(
        cluster=plane.name,
        namespaces=("bench-b",),
        role="view",
        duration=timedelta(seconds=3),
        reason="bench",
    )
    try:
        grants = [service.request(DEV, access) for _ in range(count)]
        lags = []
        for grant in grants:
            assert grant.expires_at is not None
            while True:
                try:
                    admin.get(ServiceAccount, grant.service_account, namespace="kubejit-grants")
                except ApiError as e:
                    if e.status.code == 404:
                        break
                    raise
                time.sleep(0.01)
            lags.append(max(0.0, time.time() - grant.expires_at.timestamp()))
    finally:
        for worker in workers:
            worker.stop()
    print(f"expiry precision (end time → ServiceAccount gone), {count} grants, sweeper every 0.5 s:")
    print(f"  p50 {ms(pct(lags, 0.5))}   p99 {ms(pct(lags, 0.99))}   max {ms(max(lags))}   (goal ≤ 1 s)")


def bench_scale(store_dir: Path, plane: ControlPlane, adapter: KubeClusterAdapter, total: int) -> None:
    print(f"store scale (SQLite): sweeper tick and list API with {total:,} vs 100 grants:")
    for size in sorted({100, total}):
        engine = create_store_engine(f"sqlite:///{store_dir / f'scale-{size}.db'}")
        upgrade(engine)
        store = SqlGrantStore(engine)
        clock = SystemClock()
        ids = (GrantId(f"g{n:012x}") for n in itertools.count())
        service = GrantService(
            store=store,
            audit=SqlAuditStore(engine),
            clusters={plane.name: adapter},
            policy=parse_policy(POLICY),
            clock=clock,
            id_factory=lambda ids=ids: next(ids),
        )
        template = service.check(DEV, AccessRequest(cluster=plane.name, namespaces=("bench-a",), role="view"))
        seed(store, template, size, clock)
        tick = statistics.median(timed(service.expire_due) for _ in range(20))
        key = load_or_create_key(store_dir / "key.pem")
        issuer = DevIssuer(
            users={"dana": frozenset({"dev"}), "root": frozenset({"admins"})},
            key=key,
            issuer="http://bench",
            clock=clock,
        )
        app = create_app(Services(grants=service, authenticator=issuer, clusters=[], dev_issuer=issuer))
        with TestClient(app) as http:
            mine = {"authorization": f"Bearer {issuer.issue('dana')}"}
            everyone = {"authorization": f"Bearer {issuer.issue('root')}"}
            list_mine = statistics.median(
                timed(lambda h=mine: http.get("/v1/grants", params={"state": "active"}, headers=h))
                for _ in range(20)
            )
            list_all = statistics.median(
                timed(lambda h=everyone: http.get("/v1/grants", params={"scope": "all"}, headers=h))
                for _ in range(10)
            )
        print(
            f"  {size:>6,} grants: sweeper tick {ms(tick)}   GET /v1/grants (mine, 10 active) {ms(list_mine)}"
            f"   GET /v1/grants?scope=all (first 1000) {ms(list_all)}"
        )
        engine.dispose()


def seed(store: SqlGrantStore, template: object, size: int, clock: SystemClock) -> None:
    """``size`` active grants of other people (10 of them dana's), inserted straight into the store."""
    from dataclasses import replace

    base = lifecycle.new_grant(
        GrantId("seed"),
        principal=DEV,
        now=clock.now(),
        decision=template,  # type: ignore[arg-type]
        request=AccessRequest(cluster="bench", namespaces=("bench-a",), role="view"),
    )
    active = lifecycle.activate(base, now=clock.now())
    for n in range(size):
        requester = "dana" if n < 10 else f"user{n % 500}"
        store.add(replace(active, id=GrantId(f"s{n:012x}"), requester=requester), [])  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--expiries", type=int, default=20)
    parser.add_argument("--grants", type=int, default=10_000)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest functions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubejit-bench-") as tmp:
        work = Path(tmp)
        with ControlPlane(work / "cluster", name="bench") as plane:
            with admin_client(plane) as admin:
                creds = install_broker(
                    admin,
                    cluster=plane.name,
                    out=work / "broker.kubeconfig",
                    namespaces=("bench-a", "bench-b"),
                )
            adapter = KubeClusterAdapter.from_kubeconfig(
                plane.name,
                kubeconfig=str(creds.kubeconfig_path),
                grant_namespace="kubejit-grants",
                audience=plane.audience,
            )
            engine = create_store_engine(f"sqlite:///{work / 'kubejit.db'}")
            upgrade(engine)
            service = GrantService(
                store=SqlGrantStore(engine),
                audit=SqlAuditStore(engine),
                clusters={plane.name: adapter},
                policy=parse_policy(POLICY),
                clock=SystemClock(),
                locks=SqlLockStore(engine),  # as `kubejit serve` wires it: activation and mint check locks
            )
            with admin_client(plane) as admin, Client(KubeConfig.from_file(creds.kubeconfig_path)) as broker:
                bench_activation(service, broker, admin, plane, args.rounds, args.profile)
                bench_expiry(service, admin, plane, args.expiries)
            bench_scale(work, plane, adapter, args.grants)
            adapter.close()
            engine.dispose()


if __name__ == "__main__":
    main()
