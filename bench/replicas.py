"""Several replicas on PostgreSQL: throughput and latency of request+activate and of token mint with
1 and with 3 `kubejit serve` processes, side by side in one run. Prints figures; never fails.

Everything is started here: a throwaway PostgreSQL, a control plane (etcd + kube-apiserver), and the
brokers as processes (a fresh database per configuration). Client threads spread their calls over
the replicas round-robin, as a load balancer would, for a fixed time per measurement.

    .venv/bin/python bench/replicas.py [--seconds 10] [--clients 6]

On one machine the replicas, PostgreSQL and the API server share the same cores: the figures show
what several replicas cost or gain there, not what separate nodes would give.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa
import yaml

from kubejit.clusters.bootstrap import install_broker
from kubejit.testing.clients import admin_client
from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.postgres import ThrowawayPostgres, postgres_bin_dir
from kubejit.testing.processes import free_port

KUBEJIT = str(Path(sys.executable).with_name("kubejit"))
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
"""


@dataclass
class Figures:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    def line(self, label: str) -> str:
        if not self.latencies:
            return f"{label:<32} no successful call ({self.errors} errors)"
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return (
            f"{label:<32} {len(ordered) / self.seconds:7.1f}/s  median {statistics.median(ordered) * 1000:7.1f} ms"
            f"  p99 {p99 * 1000:7.1f} ms  ({len(ordered)} calls, {self.errors} errors)"
        )

    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def _start_broker(
    work: Path, *, store_url: str, kubeconfig: Path, plane: ControlPlane, public: str | None
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    work.mkdir(parents=True)
    (work / "policy.yaml").write_text(POLICY)
    users = {f"user{n}": ["dev"] for n in range(32)}
    config = {
        "broker": {"host": "127.0.0.1", "port": port, "maxOpenGrantsPerPerson": 10_000,
                   "rateLimits": {"perSourcePerMinute": 0, "perPrincipalPerMinute": 0},
                   **({"publicUrl": public} if public else {})},
        "store": {"url": store_url},
        "dataDir": str(work.parent / "data"),
        "clusters": [{"name": plane.name, "kubeconfig": str(kubeconfig), "audience": plane.audience}],
        "policyFile": "policy.yaml",
        "devIssuer": {"enabled": True, "users": users},
    }  # fmt: skip
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    log = (work / "broker.log").open("ab")
    process = subprocess.Popen(
        [KUBEJIT, "serve", "--config", str(work / "config.yaml")], stdout=log, stderr=log
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"broker exited: {(work / 'broker.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return url, process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("broker never became ready")


@contextmanager
def replicas(
    count: int, work: Path, *, admin_url: str, kubeconfig: Path, plane: ControlPlane
) -> Iterator[list[str]]:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    store_url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    started: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for n in range(count):
            public = started[0][0] if started else None
            started.append(
                _start_broker(
                    work / f"r{count}-{n}",
                    store_url=store_url,
                    kubeconfig=kubeconfig,
                    plane=plane,
                    public=public,
                )
            )
        yield [url for url, _ in started]
    finally:
        for _, process in started:
            process.terminate()
        for _, process in started:
            process.wait(timeout=60)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.dispose()


def _hammer(
    urls: list[str], clients: int, seconds: float, call: Callable[[httpx.Client, str, int], bool]
) -> Figures:
    """``clients`` threads calling ``call(http, replica_url, client)`` until ``seconds`` have passed."""
    figures = Figures()
    turn = itertools.count()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run(client: int) -> None:
        with httpx.Client(timeout=60) as http:
            while time.monotonic() < stop:
                with lock:
                    url = urls[next(turn) % len(urls)]
                began = time.perf_counter()
                ok = call(http, url, client)
                took = time.perf_counter() - began
                with lock:
                    if ok:
                        figures.latencies.append(took)
                    else:
                        figures.errors += 1

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    figures.seconds = time.monotonic() - began
    return figures


def measure(urls: list[str], *, plane: ControlPlane, clients: int, seconds: float) -> tuple[Figures, Figures]:
    tokens = {}
    for n in range(clients):
        answer = httpx.post(f"{urls[n % len(urls)]}/v1/dev/login", json={"user": f"user{n}"}, timeout=30)
        answer.raise_for_status()
        tokens[n] = answer.json()["token"]
    grants: dict[int, list[str]] = {n: [] for n in range(clients)}

    def request(http: httpx.Client, url: str, client: int) -> bool:
        body = {"cluster": plane.name, "namespaces": ["bench-a"], "role": "view"}
        answer = http.post(
            f"{url}/v1/grants", json=body, headers={"authorization": f"Bearer {tokens[client]}"}
        )
        if answer.status_code == 201 and answer.json()["state"] == "active":
            grants[client].append(answer.json()["id"])
            return True
        return False

    mints = itertools.count()

    def mint(http: httpx.Client, url: str, client: int) -> bool:
        mine = grants[client]
        grant_id = mine[next(mints) % len(mine)]
        answer = http.post(
            f"{url}/v1/grants/{grant_id}/token", headers={"authorization": f"Bearer {tokens[client]}"}
        )
        return answer.status_code == 200

    activation = _hammer(urls, clients, seconds, request)
    minting = _hammer(urls, clients, seconds, mint)
    return activation, minting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=6)
    args = parser.parse_args()
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL binaries not found: install postgresql (scripts/test does)")
    with tempfile.TemporaryDirectory(prefix="kubejit-bench-") as tmp:
        work = Path(tmp)
        postgres = ThrowawayPostgres(bin_dir)
        postgres.start()
        try:
            with ControlPlane(work / "cluster", name="bench") as plane:
                with admin_client(plane) as admin:
                    creds = install_broker(
                        admin, cluster=plane.name, out=work / "broker.kubeconfig", namespaces=("bench-a",)
                    )
                results = {}
                for count in (1, 3):
                    with replicas(
                        count,
                        work / "brokers",
                        admin_url=postgres.url,
                        kubeconfig=creds.kubeconfig_path,
                        plane=plane,
                    ) as urls:
                        results[count] = measure(
                            urls, plane=plane, clients=args.clients, seconds=args.seconds
                        )
        finally:
            postgres.stop()
    print(f"\n{args.clients} clients, {args.seconds:.0f} s per measurement, PostgreSQL, one control plane")
    for count, (activation, minting) in results.items():
        print(activation.line(f"{count} replica(s): request+activate"))
        print(minting.line(f"{count} replica(s): token mint"))
    for label, index in (("request+activate", 0), ("token mint", 1)):
        one, three = results[1][index].rate(), results[3][index].rate()
        print(f"throughput 3 vs 1 replica, {label}: {three / one if one else float('nan'):.2f}x")


if __name__ == "__main__":
    main()
