"""How long the `kubejit` command takes to start, side by side with `kubectl version --client`.

Runs, interleaved round-robin in one process so machine load hits all alike (>= 20 each):

    python -c pass            the interpreter with `site`, as any console script starts (the floor)
    kubectl version --client  kubectl's own start, for scale
    kubejit --version         answered before click loads
    kubejit --help            click builds the whole command tree (every module)
    click alone, 1 command    the floor click sets: a one-command app with whoami's options, no I/O
    kubejit whoami            a real call: session, urllib, one GET /v1/whoami to a local broker
    kubejit grants            one GET /v1/grants (none yet: "Grants: none.", no table, so no Rich)
    kubejit requests          two GET /v1/grants (none yet)
    kubejit request           one POST /v1/grants that waits for approval, and its summary printed
                              (the same lines as approve, deny, revoke and extend print)
    GET /v1/whoami in-process the broker's share of `kubejit whoami`: one request from this process

The broker is a real `kubejit serve` (dev issuer, SQLite, one cluster entry whose API server is not
there: these commands never talk to it), logged in with `kubejit login --dev-user`. Each row's
ratio is its median over kubectl's median, both from this run.
Usage: .venv/bin/python bench/cli_startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from kubejit.testing.processes import free_port

BIN = Path(sys.executable).parent
POLICY = """\
roles:
  view: {clusterRole: view}
rules:
  - name: developers-view
    groups: [developers]
    clusters: [bench]
    namespaces: [team-a]
    roles: [view]
    duration: {max: 1h}
    approval: auto
  - name: developers-edit
    groups: [developers]
    clusters: [bench]
    namespaces: [team-b]
    roles: [view]
    duration: {max: 1h}
    approval: {approvers: 1, groups: [sre]}
"""
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: bench, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: bench, user: {token: none}}]
contexts: [{name: bench, context: {cluster: bench, user: bench}}]
current-context: bench
"""
#: The least any click command costs: the root's --version option and whoami's --broker / --output.
CLICK_FLOOR = """
from enum import StrEnum
import click
class Output(StrEnum):
    table = "table"
    json = "json"
@click.group()
@click.option("--version", "-V", is_flag=True, is_eager=True, expose_value=False)
def root() -> None:
    \"\"\"The root.\"\"\"
@root.command()
@click.option("--broker")
@click.option("--output", "-o", type=click.Choice(Output), default=Output.table)
def whoami(broker: str | None, output: Output) -> None:
    print("alice")
root(["whoami"])
"""


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed


def round_trip(port: int, home: Path) -> float:
    """The broker's share of `kubejit whoami`: one GET /v1/whoami on a new connection, from here."""
    import http.client

    token = json.loads((home / "config" / "kubejit" / "session.json").read_text())["token"]
    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/v1/whoami", headers={"authorization": f"Bearer {token}"})
    answer = connection.getresponse()
    answer.read()
    connection.close()
    elapsed = time.perf_counter() - start
    if answer.status != 200:
        raise SystemExit(f"GET /v1/whoami answered {answer.status}")
    return elapsed


def start_broker(home: Path, port: int) -> subprocess.Popen[bytes]:
    (home / "policy.yaml").write_text(POLICY)
    (home / "cluster.kubeconfig").write_text(KUBECONFIG)
    config = {
        "broker": {"host": "127.0.0.1", "port": port, "maxOpenGrantsPerPerson": 10_000},
        "store": {"url": f"sqlite:///{home / 'kubejit.db'}"},
        "dataDir": str(home / "data"),
        "clusters": [{"name": "bench", "kubeconfig": str(home / "cluster.kubeconfig"), "audience": "bench"}],
        "policyFile": "policy.yaml",
        "devIssuer": {"enabled": True, "users": {"alice": ["developers"]}},
    }
    (home / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    log = (home / "broker.log").open("ab")
    broker = subprocess.Popen(
        [str(BIN / "kubejit"), "serve", "--config", str(home / "config.yaml")], stdout=log, stderr=log
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if broker.poll() is not None:
            raise SystemExit(f"the broker exited: {(home / 'broker.log').read_text()[-1500:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return broker
        except OSError:
            time.sleep(0.2)
    broker.terminate()
    raise SystemExit("the broker did not become healthy in 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    runs = max(20, parser.parse_args().runs)
    home = Path(tempfile.mkdtemp(prefix="kubejit-bench-cli-"))
    port = free_port()
    skip = ("KUBEJIT", "XDG_", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env.update(
        PYTHONPYCACHEPREFIX=str(home / "pycache"),
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        KUBECONFIG=str(home / "kubeconfig"),
        COLUMNS="100",
    )
    broker = start_broker(home, port)
    try:
        url = f"http://127.0.0.1:{port}"
        kubejit = str(BIN / "kubejit")
        timed([kubejit, "login", "--dev-user", "alice", "--broker", url], env)
        cases: dict[str, Callable[[], float]] = {
            "python -c pass": lambda: timed([sys.executable, "-c", "pass"], env),
            "kubectl version --client": lambda: timed([str(BIN / "kubectl"), "version", "--client"], env),
            "kubejit --version": lambda: timed([kubejit, "--version"], env),
            "kubejit --help": lambda: timed([kubejit, "--help"], env),
            "click alone, 1 command": lambda: timed([sys.executable, "-c", CLICK_FLOOR], env),
            "kubejit whoami": lambda: timed([kubejit, "whoami"], env),
            "kubejit grants": lambda: timed([kubejit, "grants"], env),
            "kubejit requests": lambda: timed([kubejit, "requests"], env),
            "kubejit request": lambda: timed(
                [kubejit, "request", "-c", "bench", "-n", "team-b", "-r", "view", "--reason", "bench"], env
            ),
            "GET /v1/whoami in-process": lambda: round_trip(port, home),
        }
        for run in cases.values():
            run()  # compiles the .pyc files and fills the page cache
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(runs):
            for name, run in cases.items():
                times[name].append(run())
        report(times, runs)
    finally:
        broker.terminate()
        broker.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def report(times: dict[str, list[float]], runs: int) -> None:
    kubectl = statistics.median(times["kubectl version --client"])
    print(f"kubejit start-up benchmark: {runs} runs each, interleaved, median / p90 wall time")
    for name, values in times.items():
        median = statistics.median(values)
        p90 = sorted(values)[int(0.9 * (len(values) - 1))]
        print(
            f"  {name:26s} {median * 1000:7.1f} ms  p90 {p90 * 1000:7.1f} ms  (x{median / kubectl:4.2f} of kubectl)"
        )


if __name__ == "__main__":
    main()
