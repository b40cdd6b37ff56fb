"""Page load time of the approval page with many pending requests, beside the API listing the same
requests, measured in one run against a real broker process (`kubejit serve`, SQLite, loopback HTTP).
Prints figures; never fails.

    .venv/bin/python bench/ui.py [--pending 1000] [--runs 30]

The broker's cluster is a kubeconfig pointing at a closed port: pending requests never touch it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import sqlalchemy as sa
import yaml

from kubejit.clock import SystemClock
from kubejit.grants.service import GrantService
from kubejit.identity.principal import Principal
from kubejit.policy.load import parse_policy
from kubejit.policy.model import AccessRequest
from kubejit.store import create_store_engine, upgrade
from kubejit.store.audit_store import SqlAuditStore
from kubejit.store.grant_store import SqlGrantStore
from kubejit.testing.processes import free_port

POLICY = """
roles:
  admin: {clusterRole: admin}
rules:
  - name: needs-one
    groups: [developers]
    clusters: ["*"]
    namespaces: ["team-*"]
    roles: [admin]
    approval: {approvers: 1, groups: [sre]}
"""
KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: unused}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


def start_broker(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    (workdir / "policy.yaml").write_text(POLICY)
    (workdir / "kubeconfig").write_text(KUBECONFIG)
    config = {
        "broker": {
            "host": "127.0.0.1",
            "port": port,
            "maxOpenGrantsPerPerson": 10_000,
            "rateLimits": {"perSourcePerMinute": 0, "perPrincipalPerMinute": 0},
        },
        "store": {"url": f"sqlite:///{workdir / 'kubejit.db'}"},
        "dataDir": str(workdir / "data"),
        "clusters": [{"name": "dev", "kubeconfig": str(workdir / "kubeconfig"), "audience": "a"}],
        "policyFile": str(workdir / "policy.yaml"),
        "devIssuer": {"enabled": True, "users": {"alice": ["developers"], "bob": ["sre"]}},
        "workers": {"reconcileIntervalSeconds": 86400},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    kubejit = str(Path(sys.executable).with_name("kubejit"))
    log = (workdir / "broker.log").open("wb")
    return subprocess.Popen(
        [kubejit, "serve", "--config", str(workdir / "config.yaml")], stdout=log, stderr=log
    )


class NoCluster:
    """Pending requests never reach a cluster; the service only asks that the cluster is known."""

    name = "dev"


def seed(db: Path, count: int) -> None:
    """``count`` pending requests by alice, made by the grant service itself (faster than HTTP)."""
    engine = create_store_engine(f"sqlite:///{db}")
    # Seeding only: no fsync per transaction (the broker measured below runs with its own settings).
    sa.event.listen(engine, "connect", lambda conn, _: conn.execute("PRAGMA synchronous=OFF"))
    upgrade(engine)
    clock = SystemClock()
    store = SqlGrantStore(engine, clock=clock)
    service = GrantService(
        store=store,
        audit=SqlAuditStore(engine),
        clusters={"dev": NoCluster()},  # type: ignore[dict-item]
        policy=parse_policy(POLICY),
        clock=clock,
        max_open_grants=count + 1,
    )
    alice = Principal(name="alice", groups=frozenset({"developers"}))
    begun = time.perf_counter()
    for i in range(count):
        service.request(
            alice, AccessRequest(cluster="dev", namespaces=(f"team-{i}",), role="admin", reason=f"r{i}")
        )
    engine.dispose()
    print(f"{count} pending requests made in {time.perf_counter() - begun:.1f} s")


def wait_healthy(url: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the broker did not start")


def sign_in(url: str, user: str) -> httpx.Client:
    """The browser's path, by hand: start, the dev issuer's picker, the callback; the session cookie."""
    http = httpx.Client(base_url=url, timeout=30)
    start = http.get("/ui/auth/start")
    params = {k: v[0] for k, v in parse_qs(urlsplit(start.headers["location"]).query).items()}
    back = http.post("/ui/dev/authorize", data={**params, "user": user}, headers={"origin": url})
    http.get(back.headers["location"])
    return http


def timed(runs: int, action: Callable[[], httpx.Response]) -> list[float]:
    action()  # warm
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        answer = action()
        times.append(time.perf_counter() - start)
        answer.raise_for_status()
    return times


def row(label: str, times: list[float], size: int) -> float:
    median = statistics.median(times)
    p90 = statistics.quantiles(times, n=10)[-1]
    print(f"{label:<46} median {median * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms   {size / 1024:7.0f} KiB")
    return median


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pending", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        seed(Path(tmp) / "kubejit.db", args.pending)
        broker = start_broker(Path(tmp), port)
        try:
            wait_healthy(url)
            bob = httpx.post(f"{url}/v1/dev/login", json={"user": "bob"}).json()["token"]
            page = sign_in(url, "bob")
            listing = httpx.Client(base_url=url, headers={"authorization": f"Bearer {bob}"}, timeout=30)
            html = page.get("/ui/approvals")
            assert f"{args.pending} request(s) wait" in html.text, html.text[:300]
            api_answer = listing.get("/v1/grants", params={"scope": "pending-for-me"})
            assert len(api_answer.json()) == args.pending
            print(f"{args.runs} loads each, one after another, on loopback (the machine is shared: loaded)")
            api_median = row(
                "API GET /v1/grants?scope=pending-for-me",
                timed(args.runs, lambda: listing.get("/v1/grants", params={"scope": "pending-for-me"})),
                len(api_answer.content),
            )
            page_median = row(
                "page GET /ui/approvals (the newest 100 listed)",
                timed(args.runs, lambda: page.get("/ui/approvals")),
                len(html.content),
            )
            everything = page.get("/ui/approvals", params={"all": "1"})
            all_median = row(
                f"page GET /ui/approvals?all=1 ({args.pending} listed)",
                timed(args.runs, lambda: page.get("/ui/approvals", params={"all": "1"})),
                len(everything.content),
            )
            print(
                f"page / API median: {page_median / api_median:.2f}x; all listed: {all_median / api_median:.2f}x"
            )
            page.close()
            listing.close()
        finally:
            broker.terminate()
            broker.wait(timeout=20)


if __name__ == "__main__":
    main()
