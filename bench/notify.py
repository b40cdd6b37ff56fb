"""Request -> first notification delivered, through a real broker to real receivers. Prints figures.

Starts a kube-apiserver (the broker needs a cluster), a broker process (`kubejit serve`) with a signed
JSON webhook and an SMTP channel (STARTTLS + AUTH, aiosmtpd on loopback), and makes N requests that
need approval, one at a time: each is timed from the POST to the receiver holding its notice (the
webhook's body, the approvers' email). The reference, measured in the same run, is the same notice
sent straight to the same receiver (one signed POST, one SMTP session): what the transport costs.
The request's grant write wakes the broker's channel workers, so the poll interval
(``deliveryIntervalSeconds``, run at two settings) should not show; the gap is the worker's own read
of the log, the routing lookups and a new connection per notice.

    .venv/bin/python bench/notify.py [--requests 100] [--intervals 1,0.1]   (or -m bench.notify)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from kubejit.audit.delivery.sinks.notice_channels import EmailChannel, WebhookChannel
from kubejit.clusters.bootstrap import install_broker
from kubejit.notify.message import Notice
from kubejit.testing.clients import admin_client
from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.processes import free_port

# Run as a script (scripts/bench), Python puts bench/ first on sys.path: the receivers are in tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.notify_receivers import (
    NOTIFY_HMAC_KEY,
    SMTP_PASSWORD,
    SMTP_USER,
    HookReceiver,
    SmtpReceiver,
)

POLICY = """
roles:
  admin: {clusterRole: admin}
rules:
  - name: bench-approval
    groups: [dev]
    clusters: ["*"]
    namespaces: ["bench-*"]
    roles: [admin]
    duration: {default: 1h, max: 2h}
    approval: {approvers: 1, groups: [sre]}
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def wait_for(check: Any, what: str, within: float = 30) -> float:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.001)
    raise SystemExit(f"never happened within {within}s: {what}")


def start_broker(
    work: Path, kubeconfig: Path, plane: ControlPlane, notifications: dict[str, Any]
) -> tuple[subprocess.Popen[bytes], str]:
    work.mkdir(parents=True)
    port = free_port()
    (work / "policy.yaml").write_text(POLICY)
    (work / "hmac.key").write_bytes(NOTIFY_HMAC_KEY)
    config = {
        "broker": {"host": "127.0.0.1", "port": port, "maxOpenGrantsPerPerson": 10_000,
                   "rateLimits": {"perSourcePerMinute": 0, "perPrincipalPerMinute": 0}},
        "store": {"url": f"sqlite:///{work / 'kubejit.db'}"},
        "dataDir": str(work / "data"),
        "clusters": [{"name": plane.name, "kubeconfig": str(kubeconfig), "audience": plane.audience}],
        "policyFile": "policy.yaml",
        "devIssuer": {"enabled": True, "users": {"dana": ["dev"]}},
        "notifications": notifications,
    }  # fmt: skip
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    log = (work / "broker.log").open("wb")
    kubejit = str(Path(sys.executable).parent / "kubejit")
    env = {**os.environ, "TEST_SMTP_PASSWORD": SMTP_PASSWORD}
    process = subprocess.Popen([kubejit, "serve", "--config", str(work / "config.yaml")], stdout=log, stderr=subprocess.STDOUT, env=env)  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"broker exited: {(work / 'broker.log').read_text()[-2000:]}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, "broker healthy", within=60)
    return process, url


def notifications(hooks: HookReceiver, smtp: SmtpReceiver, interval: float) -> dict[str, Any]:
    return {
        "deliveryIntervalSeconds": interval,
        "channels": [
            {"name": "hook", "type": "webhook", "url": hooks.url("/hook"), "hmacKey": {"fromFile": "hmac.key"}},
            {"name": "mail", "type": "email", "host": "localhost", "port": smtp.port, "caFile": str(smtp.ca_path),
             "username": SMTP_USER, "password": {"fromEnv": "TEST_SMTP_PASSWORD"}, "from": "kubejit@example.com"},
        ],
        "routes": [{"channels": ["hook", "mail"], "approverGroups": ["sre"], "to": ["sre@example.com"]}],
    }  # fmt: skip


def measure(
    url: str, plane: ControlPlane, hooks: HookReceiver, smtp: SmtpReceiver, n: int
) -> dict[str, list[float]]:
    http = httpx.Client(base_url=url, timeout=30)
    token = http.post("/v1/dev/login", json={"user": "dana"}).json()["token"]
    headers = {"authorization": f"Bearer {token}"}
    body = {"cluster": plane.name, "namespaces": ["bench-a"], "role": "admin", "reason": "bench"}
    times: dict[str, list[float]] = {"webhook": [], "smtp": []}
    for _ in range(n):
        hooks_before, mails_before = len(hooks.received("/hook")), len(smtp.received())
        started = time.monotonic()
        answer = http.post("/v1/grants", json=body, headers=headers)
        if answer.status_code != 201 or answer.json()["state"] != "pending":
            raise SystemExit(f"request failed: {answer.status_code} {answer.text[:300]}")
        wait_for(lambda h=hooks_before: len(hooks.received("/hook")) > h, "webhook notice")
        wait_for(lambda m=mails_before: len(smtp.received()) > m, "email notice")
        times["webhook"].append(hooks.received("/hook")[hooks_before].at - started)
        times["smtp"].append(smtp.received()[mails_before].at - started)
    http.close()
    return times


def reference(hooks: HookReceiver, smtp: SmtpReceiver, n: int) -> dict[str, list[float]]:
    """The same notice straight to the same receivers: one signed POST, one SMTP session each."""
    notice = Notice(
        "needs_approval",
        "g0",
        "dana",
        "bench",
        ("bench-a",),
        "admin",
        "bench",
        "",
        "https://x/ui/requests/g0",
    )
    hook = WebhookChannel("ref", url=hooks.url("/hook"), key=NOTIFY_HMAC_KEY)
    mail = EmailChannel("ref", host="localhost", port=smtp.port, security="starttls", sender="kubejit@example.com",
                        username=SMTP_USER, password=SMTP_PASSWORD.encode(), ca_file=smtp.ca_path)  # fmt: skip
    times: dict[str, list[float]] = {"webhook": [], "smtp": []}
    for i in range(n):
        started = time.monotonic()
        hook.send(notice, event_id=f"ref{i}", to=())
        times["webhook"].append(time.monotonic() - started)
        started = time.monotonic()
        mail.send(notice, event_id=f"ref{i}", to=("sre@example.com",))
        times["smtp"].append(time.monotonic() - started)
    hook.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--intervals", default="1,0.1", help="deliveryIntervalSeconds values to run")
    args = parser.parse_args()
    rows: list[tuple[str, dict[str, list[float]]]] = []
    with tempfile.TemporaryDirectory(prefix="kubejit-bench-") as tmp:
        work = Path(tmp)
        hooks = HookReceiver().start()
        smtp = SmtpReceiver(work / "smtp").start()
        try:
            with ControlPlane(work / "cluster", name="bench") as plane:
                with admin_client(plane) as admin:
                    creds = install_broker(
                        admin, cluster=plane.name, out=work / "broker.kubeconfig", namespaces=("bench-a",)
                    )
                for n, interval in enumerate(float(v) for v in args.intervals.split(",")):
                    process, url = start_broker(
                        work / f"broker-{n}",
                        creds.kubeconfig_path,
                        plane,
                        notifications(hooks, smtp, interval),
                    )
                    try:
                        rows.append(
                            (
                                f"kubejit, deliveryIntervalSeconds {interval:g}",
                                measure(url, plane, hooks, smtp, args.requests),
                            )
                        )
                    finally:
                        process.terminate()
                        process.wait(timeout=30)
                rows.append(
                    ("reference: the same notice sent directly", reference(hooks, smtp, args.requests))
                )
        finally:
            smtp.stop()
            hooks.stop()
    print(f"\nrequest -> first notification delivered, {args.requests} requests each (ms)")
    print(f"{'':48} {'webhook p50':>12} {'p99':>8} {'smtp p50':>10} {'p99':>8}")
    for name, times in rows:
        w, s = times["webhook"], times["smtp"]
        print(
            f"{name:48} {statistics.median(w) * 1000:12.1f} {percentile(w, 99) * 1000:8.1f} "
            f"{statistics.median(s) * 1000:10.1f} {percentile(s, 99) * 1000:8.1f}"
        )


if __name__ == "__main__":
    main()
