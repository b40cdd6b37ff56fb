"""jwt mode against ServiceAccount mode, on one real kube-apiserver that trusts the broker as an issuer.

The broker is built by the same wiring as `kubejit serve` (workers off) and served over HTTPS in this
process; the control plane starts with the AuthenticationConfiguration `kubejit cluster-setup --mode
jwt` prints. Two cluster entries point at the same API server, one per mode. Prints figures; never fails.

1. Activation (approve → usable token) through kubejit in jwt mode and in ServiceAccount mode, and the
   raw calls of each (jwt: one RoleBinding + a local ES256 signature; SA: ServiceAccount + RoleBinding +
   TokenRequest), interleaved; medians and p90.
2. Revoke → Forbidden: from `revoke` returning to the API server's first 403 for the grant's token,
   both modes (p50/p99).
3. The shortest token lifetime that works end to end: tokens of L seconds, each used at once.
4. `kubejit token` (kubectl's exec plugin) cold (a mint at the broker) and warm (cached), both modes.

    .venv/bin/python bench/jwt_mode.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import uvicorn
import yaml
from lightkube import Client
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.core_v1 import ServiceAccount
from lightkube.resources.rbac_authorization_v1 import RoleBinding

from kubejit.clock import SystemClock
from kubejit.clusters.bootstrap import install_broker
from kubejit.clusters.jwt_setup import authentication_configuration, jwt_authenticator, to_yaml
from kubejit.config import parse_settings
from kubejit.grants.service import GrantService
from kubejit.identity.cluster_keys import ClusterKeyRing
from kubejit.identity.cluster_tokens import ClusterTokenIssuer
from kubejit.identity.principal import Principal
from kubejit.ids import GrantId
from kubejit.policy.model import AccessRequest
from kubejit.server.app import create_app
from kubejit.server.wiring import build_services
from kubejit.testing.certs import write_serving_tls
from kubejit.testing.clients import admin_client
from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.processes import free_port

POLICY = """
roles: {view: {clusterRole: view}}
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
BIN = Path(sys.executable).parent
EXEC_INFO = (
    '{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}'
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def line(name: str, values: list[float]) -> None:
    print(f"  {name:34s} median {ms(statistics.median(values))}   p90 {ms(pct(values, 0.9))}")


class Bench:
    def __init__(
        self, work: Path, plane: ControlPlane, port: int, service: GrantService, ca: Path, issuer_url: str
    ) -> None:
        self.work, self.plane, self.port, self.service = work, plane, port, service
        self.issuer_url = issuer_url
        self.api = httpx.Client(verify=ssl.create_default_context(cafile=str(plane.ca_path)), timeout=10)
        self.ca = ca

    def status(self, token: str, namespace: str = "bench-a") -> int:
        answer = self.api.get(
            f"{self.plane.server}/api/v1/namespaces/{namespace}/configmaps",
            headers={"authorization": f"Bearer {token}"},
        )
        return answer.status_code

    def until(self, token: str, wanted: int, *, within: float = 60) -> float:
        started = time.perf_counter()
        while self.status(token) != wanted:
            if time.perf_counter() - started > within:
                raise SystemExit(f"the API server never answered {wanted} within {within:.0f}s")
            time.sleep(0.005)
        return time.perf_counter() - started


def raw_sa(client: Client, n: int, audience: str) -> None:
    name = f"raw-sa-{n}"
    client.create(ServiceAccount(metadata=ObjectMeta(name=name, namespace="kubejit-grants")))
    client.create(
        RoleBinding(
            metadata=ObjectMeta(name=name, namespace="bench-a"),
            roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
            subjects=[Subject(kind="ServiceAccount", name=name, namespace="kubejit-grants")],
        )
    )
    request = ServiceAccount.Token(
        metadata=ObjectMeta(name=name), spec=TokenRequestSpec(audiences=[audience], expirationSeconds=3600)
    )
    client.create(request, name, namespace="kubejit-grants")


def raw_jwt(client: Client, n: int, issuer: ClusterTokenIssuer) -> None:
    name = f"raw-jwt-{n}"
    client.create(
        RoleBinding(
            metadata=ObjectMeta(name=name, namespace="bench-a"),
            roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
            subjects=[Subject(kind="Group", name=f"raw:{name}", apiGroup="rbac.authorization.k8s.io")],
        )
    )
    issuer.mint(subject="dana", grant_id=name, audience="kubejit:jwt", not_after=None)


def bench_activation(bench: Bench, admin: Client, issuer: ClusterTokenIssuer, rounds: int) -> None:
    times: dict[str, list[float]] = {
        "kubejit jwt mode": [],
        "raw jwt calls": [],
        "kubejit SA mode": [],
        "raw SA calls": [],
    }
    for n in range(rounds):
        for cluster in ("jwt", "sa"):
            pending = bench.service.request(
                OPS, AccessRequest(cluster=cluster, namespaces=("bench-a",), role="view", reason="b")
            )

            def activate(grant_id: GrantId = pending.id) -> None:
                bench.service.approve(SRE, grant_id)
                bench.service.issue_token(OPS, grant_id)

            times[f"kubejit {'jwt' if cluster == 'jwt' else 'SA'} mode"].append(timed(activate))
        times["raw jwt calls"].append(timed(lambda n=n: raw_jwt(admin, n, issuer)))
        times["raw SA calls"].append(timed(lambda n=n: raw_sa(admin, n, bench.plane.audience)))
    print(f"1. activation (approve → usable token), {rounds} rounds interleaved:")
    for name, values in times.items():
        line(name, values)
    for mode, raw in (("jwt", "raw jwt calls"), ("SA", "raw SA calls")):
        ratio = statistics.median(times[f"kubejit {mode} mode"]) / statistics.median(times[raw])
        print(f"  kubejit {mode} mode / its raw calls     {ratio:6.2f}x")


def bench_revoke(bench: Bench, rounds: int) -> None:
    lags: dict[str, list[float]] = {"jwt": [], "sa": []}
    for _ in range(rounds):
        for cluster in ("jwt", "sa"):
            grant = bench.service.request(
                DEV, AccessRequest(cluster=cluster, namespaces=("bench-a",), role="view", reason="b")
            )
            token = bench.service.issue_token(DEV, grant.id).token
            bench.until(token, 200)
            bench.service.revoke(DEV, grant.id, reason="bench")
            lags[cluster].append(bench.until(token, 403))
    print(f"2. revoke returned → first 403 Forbidden for the grant's token, {rounds} grants per mode:")
    for cluster, values in lags.items():
        print(
            f"  {cluster:4s} p50 {ms(pct(values, 0.5))}   p99 {ms(pct(values, 0.99))}   max {ms(max(values))}"
        )


def bench_lifetime(bench: Bench, keys: ClusterKeyRing, tries: int) -> None:
    grant = bench.service.request(
        DEV, AccessRequest(cluster="jwt", namespaces=("bench-a",), role="view", reason="b")
    )
    print(f"3. shortest token lifetime that works end to end ({tries} tokens each, used at once):")
    for seconds in (1, 2, 3, 5, 10, 60):
        issuer = ClusterTokenIssuer(
            issuer_url=bench.issuer_url, keys=keys, lifetime_seconds=seconds, clock=SystemClock()
        )
        ok = 0
        for _ in range(tries):
            token = issuer.mint(
                subject="dana", grant_id=grant.id, audience="kubejit:jwt", not_after=None
            ).token
            ok += bench.status(token) == 200
        print(f"  lifetime {seconds:3d} s: {ok}/{tries} accepted")
    bench.service.revoke(DEV, grant.id, reason="bench")


def bench_exec(bench: Bench, runs: int) -> None:
    home = bench.work / "plugin-home"
    broker = f"https://127.0.0.1:{bench.port}"
    answer = httpx.post(
        f"{broker}/v1/dev/login",
        json={"user": "dana"},
        verify=ssl.create_default_context(cafile=str(bench.ca)),
    )
    answer.raise_for_status()
    session = home / "config" / "kubejit" / "session.json"
    session.parent.mkdir(parents=True, mode=0o700)
    session.write_text(json.dumps({"broker": broker, "token": answer.json()["token"], "user": "dana"}))
    session.chmod(0o600)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KUBEJIT", "XDG_", "PYTHONDONTWRITEBYTECODE"))
    }
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
               SSL_CERT_FILE=str(bench.ca), PYTHONPYCACHEPREFIX=str(home / "pycache"), KUBERNETES_EXEC_INFO=EXEC_INFO)  # fmt: skip
    from kubejit.exec.cache import CachePaths

    times: dict[str, list[float]] = {}
    grants = {
        c: bench.service.request(
            DEV, AccessRequest(cluster=c, namespaces=("bench-a",), role="view", reason="b")
        )
        for c in ("jwt", "sa")
    }
    commands = {
        c: [str(BIN / "kubejit"), "token", "--grant", g.id, "--broker", broker] for c, g in grants.items()
    }
    paths = {
        c: CachePaths(g.id, broker, root=str(home / "cache" / "kubejit" / "tokens"))
        for c, g in grants.items()
    }

    def run(argv: list[str]) -> None:
        done = subprocess.run(argv, env=env, capture_output=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"kubejit token failed: {done.stderr.decode()[-400:]}")

    for cluster in grants:
        run(commands[cluster])
    for _ in range(runs):
        for cluster, argv in commands.items():
            shutil.rmtree(paths[cluster].seen, ignore_errors=True)
            times.setdefault(f"{cluster} warm (cached)", []).append(timed(lambda a=argv: run(a)))
            Path(paths[cluster].entry).unlink()
            shutil.rmtree(paths[cluster].seen, ignore_errors=True)
            times.setdefault(f"{cluster} cold (mint at the broker)", []).append(timed(lambda a=argv: run(a)))
        times.setdefault("python -I -c pass", []).append(
            timed(lambda: subprocess.run([sys.executable, "-I", "-c", "pass"], check=True))
        )
    print(f"4. `kubejit token` (kubectl's exec plugin), {runs} runs interleaved, wall time:")
    for name, values in sorted(times.items()):
        line(name, values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubejit-bench-jwt-") as tmp:
        work = Path(tmp)
        tls = write_serving_tls(work / "tls", name="bench-broker")
        port = free_port()
        issuer_url = f"https://127.0.0.1:{port}/k8s"
        entry = jwt_authenticator(issuer_url=issuer_url, audience="kubejit:jwt", ca_pem=tls.ca_cert.read_text(),
                                  username_prefix="kubejit:", max_lifetime_seconds=300)  # fmt: skip
        plane = ControlPlane(
            work / "cluster",
            name="bench",
            authentication_config=to_yaml(authentication_configuration([entry])),
        )
        with plane:
            with admin_client(plane) as admin:
                # For its namespaces (the broker itself acts as admin here: see the config below).
                install_broker(
                    admin, cluster="bench", out=work / "broker.kubeconfig", namespaces=("bench-a",)
                )
            (work / "policy.yaml").write_text(POLICY)
            config = {
                "broker": {"host": "127.0.0.1", "port": port, "tls": {"certFile": str(tls.cert), "keyFile": str(tls.key)},
                           "rateLimits": {"perSourcePerMinute": 0, "perPrincipalPerMinute": 0},
                    "maxOpenGrantsPerPerson": 10000,
                },
                "store": {"url": f"sqlite:///{work / 'kubejit.db'}"},
                "dataDir": str(work / "data"),
                "clusters": [
                    # The broker's RBAC admits one mode's bindings; this bench binds both, so it acts as admin.
                    {"name": "jwt", "kubeconfig": str(plane.kubeconfig_path), "audience": "kubejit:jwt", "credentialMode": "jwt"},
                    {"name": "sa", "kubeconfig": str(plane.kubeconfig_path), "audience": plane.audience},
                ],
                "policyFile": "policy.yaml",
                "devIssuer": {"enabled": True, "users": {"dana": ["dev"]}},
                "jwtIssuer": {"tokenLifetimeMinutes": 5},
            }  # fmt: skip
            settings = parse_settings(yaml.safe_dump(config), source="bench", base_dir=work)
            services = build_services(settings, workers=False)
            server = uvicorn.Server(uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="warning",
                                                   ssl_certfile=str(tls.cert), ssl_keyfile=str(tls.key)))  # fmt: skip
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            try:
                assert services.cluster_issuer is not None
                bench = Bench(work, plane, port, services.grants, tls.ca_cert, issuer_url)
                probe = services.grants.request(
                    DEV, AccessRequest(cluster="jwt", namespaces=("bench-a",), role="view", reason="b")
                )
                started = time.perf_counter()
                bench.until(services.grants.issue_token(DEV, probe.id).token, 200, within=90)
                print(f"(the API server's JWT authenticator was ready {time.perf_counter() - started:.1f} s after the broker;"
                      " machine shared and loaded)")  # fmt: skip
                with admin_client(plane) as raw:
                    bench_activation(bench, raw, services.cluster_issuer, args.rounds)
                bench_revoke(bench, args.rounds)
                bench_lifetime(bench, services.cluster_issuer.keys, 10)
                bench_exec(bench, max(10, args.rounds))
            finally:
                server.should_exit = True
                thread.join(timeout=10)
                for stop in reversed(services.on_shutdown):
                    stop()


if __name__ == "__main__":
    main()
