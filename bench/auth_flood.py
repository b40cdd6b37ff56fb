"""A flood of bad bearer tokens against real broker processes: audit writes and activation latency.

Each broker is `kubejit serve` on loopback with SQLite and a real kube-apiserver started here. The
flood is --requests bad bearer tokens from --clients concurrent clients, each on its own loopback
source address (127.0.0.2, 127.0.0.3, ...); a person on 127.0.0.1 meanwhile requests auto-approved
grants, each timed from request to active (one call). Printed side by side:

* limits off   broker.rateLimits all 0 and authFailureSummarySeconds 0: one audit write per bad
               token, as before rate limits existed (3eb48df);
* defaults     the shipped limits and the auth.failed summary;
* (--baseline-kubejit PATH) the same flood against another kubejit's `serve`, e.g. an older checkout.

Figures: auth.failed events written per 10,000 bad requests (after the broker stopped and flushed),
answers by status, and p50/p99 of request→active with and without the flood. Never fails on time.

    .venv/bin/python bench/auth_flood.py [--requests 10000] [--clients 4] [--quiet-grants 30]
"""

from __future__ import annotations

import argparse
import itertools
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from kubejit.clusters.bootstrap import install_broker
from kubejit.testing.clients import admin_client
from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.processes import free_port

POLICY = """
roles: {view: {clusterRole: view}}
rules:
  - name: bench
    groups: [dev]
    clusters: ["*"]
    namespaces: ["bench-a"]
    roles: [view]
    duration: {default: 10m, max: 1h}
    approval: auto
"""
#: Seconds between a person's timed requests during the flood (each is a request and a revoke).
PACE = 0.25
OFF = {
    "perSourcePerMinute": 0,
    "perPrincipalPerMinute": 0,
    "authFailuresPerSourcePerMinute": 0,
    "authFailureSummarySeconds": 0,
}


@dataclass
class Run:
    name: str
    statuses: Counter[int] = field(default_factory=Counter)
    flood_seconds: float = 0.0
    quiet: list[float] = field(default_factory=list)
    flooded: list[float] = field(default_factory=list)
    events: int = 0


class BrokerProcess:
    def __init__(self, work: Path, kubejit: str, plane: ControlPlane, kubeconfig: Path, limits: Any) -> None:
        self.work, self.kubejit, self.port = work, kubejit, free_port()
        work.mkdir(parents=True)
        (work / "policy.yaml").write_text(POLICY)
        broker: dict[str, Any] = {"host": "127.0.0.1", "port": self.port}
        if limits is not None:
            broker.update(rateLimits=limits, maxOpenGrantsPerPerson=10_000)
        config = {
            "broker": broker,
            "store": {"url": f"sqlite:///{work / 'kubejit.db'}"},
            "dataDir": str(work / "data"),
            "clusters": [{"name": plane.name, "kubeconfig": str(kubeconfig), "audience": plane.audience}],
            "policyFile": "policy.yaml",
            "devIssuer": {"enabled": True, "users": {"dana": ["dev"]}},
        }
        (work / "config.yaml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BrokerProcess:
        log = (self.work / "broker.log").open("wb")
        command = [self.kubejit, "serve", "--config", str(self.work / "config.yaml")]
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"broker exited: {(self.work / 'broker.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SystemExit("broker never became healthy")

    def __exit__(self, *_: object) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)  # a clean stop: pending summaries are flushed
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def auth_failed_events(self) -> int:
        with sqlite3.connect(self.work / "kubejit.db") as db:
            row = db.execute("SELECT count(*) FROM audit_events WHERE action = 'auth.failed'").fetchone()
        return int(row[0])


def request_to_active(http: httpx.Client, token: str) -> float:
    body = {"cluster": "bench", "namespaces": ["bench-a"], "role": "view", "reason": "bench"}
    started = time.perf_counter()
    answer = http.post("/v1/grants", json=body, headers={"authorization": f"Bearer {token}"})
    elapsed = time.perf_counter() - started
    if answer.status_code != 201 or answer.json()["state"] != "active":
        raise SystemExit(f"a legitimate request failed: {answer.status_code} {answer.text[:300]}")
    http.post(
        f"/v1/grants/{answer.json()['id']}/revoke", json={}, headers={"authorization": f"Bearer {token}"}
    )
    return elapsed


def flood(url: str, source: str, count: int, statuses: Counter[int], lock: threading.Lock) -> None:
    transport = httpx.HTTPTransport(local_address=source)
    seen: Counter[int] = Counter()
    with httpx.Client(base_url=url, transport=transport, timeout=60) as http:
        for n in range(count):
            bad = f"Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.bad-{source}-{n}"
            seen[http.get("/v1/grants", headers={"authorization": bad}).status_code] += 1
    with lock:
        statuses.update(seen)


def measure(run: Run, broker: BrokerProcess, requests: int, clients: int, quiet_grants: int) -> None:
    with httpx.Client(base_url=broker.url, timeout=60) as http:
        token = http.post("/v1/dev/login", json={"user": "dana"}).json()["token"]
        request_to_active(http, token)  # warm up
        for _ in range(quiet_grants):
            run.quiet.append(request_to_active(http, token))
            time.sleep(PACE)
        lock = threading.Lock()
        per_client = requests // clients
        threads = [
            threading.Thread(
                target=flood, args=(broker.url, f"127.0.0.{2 + i}", per_client, run.statuses, lock)
            )
            for i in range(clients)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads) or len(run.flooded) < 5:
            run.flooded.append(request_to_active(http, token))
            time.sleep(PACE)  # a person, not a script: well under the per-principal limit
        run.flood_seconds = time.perf_counter() - started
        for thread in threads:
            thread.join()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def report(runs: list[Run], requests: int) -> None:
    width = 18
    print(f"\n{requests} bad bearer tokens from concurrent clients; figures per broker:\n")
    print(" " * 44 + "".join(f"{r.name:>{width}}" for r in runs))

    def row(label: str, values: list[str]) -> None:
        print(f"{label:44}" + "".join(f"{v:>{width}}" for v in values))

    row("auth.failed events per 10,000 bad requests", [f"{r.events * 10_000 / requests:.0f}" for r in runs])
    row("answers 401 / 429", [f"{r.statuses[401]} / {r.statuses[429]}" for r in runs])
    row("flood duration", [f"{r.flood_seconds:.1f} s" for r in runs])
    row("request→active p50, no flood", [f"{pct(r.quiet, 0.5):.1f} ms" for r in runs])
    row("request→active p99, no flood", [f"{pct(r.quiet, 0.99):.1f} ms" for r in runs])
    row("request→active p50, during the flood", [f"{pct(r.flooded, 0.5):.1f} ms" for r in runs])
    row("request→active p99, during the flood", [f"{pct(r.flooded, 0.99):.1f} ms" for r in runs])
    row("grants activated during the flood", [str(len(r.flooded)) for r in runs])
    row(
        "p50 during / without the flood",
        [f"{statistics.median(r.flooded) / statistics.median(r.quiet):.1f}x" for r in runs],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--quiet-grants", type=int, default=30)
    parser.add_argument("--baseline-kubejit", help="another kubejit executable to flood the same way")
    args = parser.parse_args()
    kubejit = str(Path(sys.executable).parent / "kubejit")
    configs: list[tuple[str, str, Any]] = [("limits off", kubejit, OFF), ("defaults", kubejit, {})]
    if args.baseline_kubejit:
        configs.insert(0, ("baseline", args.baseline_kubejit, None))
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="kubejit-bench-") as tmp:
        work = Path(tmp)
        with ControlPlane(work / "cluster", name="bench") as plane:
            with admin_client(plane) as admin:
                creds = install_broker(
                    admin, cluster=plane.name, out=work / "broker.kubeconfig", namespaces=("bench-a",)
                )
            for n, (name, executable, limits) in zip(itertools.count(), configs):
                run = Run(name)
                broker = BrokerProcess(work / f"broker-{n}", executable, plane, creds.kubeconfig_path, limits)
                with broker:
                    measure(run, broker, args.requests, args.clients, args.quiet_grants)
                run.events = broker.auth_failed_events()
                print(
                    f"{name}: {run.events} auth.failed events, {sum(run.statuses.values())} answers",
                    flush=True,
                )
                runs.append(run)
    report(runs, args.requests)


if __name__ == "__main__":
    main()
