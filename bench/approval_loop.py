"""Request -> approved -> usable token, the approver acting from the notification's link in a real
browser, beside the same loop approved through the API, in one run. Prints figures; never fails.

Starts a kube-apiserver, a broker process (`kubejit serve`) whose policy rule needs one approval and
whose ``webhook`` notification channel posts to a receiver on loopback, and headless Debian chromium
(Playwright) where the approver (bob) signs in once through the dev issuer. Each round:

1. the requester (alice) POSTs ``/v1/grants`` as `kubejit request` does;
2. the signed notice reaches the webhook receiver ("notified"), carrying the request's link;
3. the approver opens that link in the browser and clicks Approve, or, for the reference, POSTs
   ``/v1/grants/{id}/approve`` as `kubejit approve` does ("approved": the time the broker records on
   the approval, not when the approver's page has shown it);
4. meanwhile the requester polls ``POST /v1/grants/{id}/token`` as the exec plugin does, on the
   schedule of `kubejit request --wait` (0.5 s, then x1.5) and, in the same run, every 50 ms (what
   the loop costs when the requester's polling is not the wait);
5. the token lists pods in the granted namespace on the kube-apiserver ("usable": 200, retried on
   403 in case RBAC has not caught up, the retries counted). "approved -> usable token" is the
   grant's activation on the cluster (its RBAC objects), the wait for the next poll, the mint and
   that first use.

    .venv/bin/python bench/approval_loop.py [--rounds 20] [--polling wait,0.05]   (or -m bench.approval_loop)
"""

from __future__ import annotations

import argparse
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import Any

import httpx
import yaml
from playwright.sync_api import Page, expect, sync_playwright

from kubejit.cli.waiting import poll_intervals
from kubejit.clusters.bootstrap import install_broker
from kubejit.testing.clients import admin_client
from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.processes import free_port

# Run as a script (scripts/bench), Python puts bench/ first on sys.path: the receiver is in tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.notify_receivers import NOTIFY_HMAC_KEY, HookReceiver

CHROMIUM = "/usr/bin/chromium"
NAMESPACE = "bench-loop"
POLICY = f"""
roles:
  edit: {{clusterRole: edit}}
rules:
  - name: bench-one-approver
    groups: [dev]
    clusters: ["*"]
    namespaces: ["{NAMESPACE}"]
    roles: [edit]
    duration: {{default: 1h, max: 2h}}
    approval: {{approvers: 1, groups: [sre]}}
"""
STAGES = (
    "request -> notified",
    "notified -> approved",
    "approved -> usable token",
    "request -> usable token",
)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def wait_for(check: Callable[[], Any], what: str, within: float = 60) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.002)
    raise SystemExit(f"never happened within {within}s: {what}")


def start_broker(
    work: Path, kubeconfig: Path, plane: ControlPlane, hooks: HookReceiver
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
        "devIssuer": {"enabled": True, "users": {"alice": ["dev"], "bob": ["sre"]}},
        "notifications": {
            "channels": [{"name": "hook", "type": "webhook", "url": hooks.url("/hook"),
                          "hmacKey": {"fromFile": "hmac.key"}}],
            "routes": [{"channels": ["hook"], "approverGroups": ["sre"]}],
        },
    }  # fmt: skip
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    log = (work / "broker.log").open("wb")
    kubejit = str(Path(sys.executable).parent / "kubejit")
    process = subprocess.Popen([kubejit, "serve", "--config", str(work / "config.yaml")], stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"broker exited: {(work / 'broker.log').read_text()[-2000:]}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, "broker healthy")
    return process, url


def sign_in(page: Page, url: str, user: str) -> None:
    """Once, as a person does: the sign-in link, the dev issuer's picker, back on the pages."""
    page.goto(url + "/ui/")
    page.get_by_role("link", name=re.compile("Sign in with")).click()
    page.get_by_label(re.compile(rf"^{user}\b")).check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state()
    if not page.get_by_text(f"Signed in as {user}").is_visible():
        raise SystemExit(f"sign-in as {user} did not work: {page.url}")


@dataclass
class Requester:
    """alice: requests, then polls the token endpoint and uses the token once (in its own thread,
    while the approver acts)."""

    http: httpx.Client
    api_server: str
    ca: ssl.SSLContext
    kube: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.kube = httpx.Client(base_url=self.api_server, verify=self.ca, timeout=30)

    def request(self, cluster: str) -> str:
        body = {"cluster": cluster, "namespaces": [NAMESPACE], "role": "edit", "reason": "bench loop"}
        answer = self.http.post("/v1/grants", json=body)
        if answer.status_code != 201 or answer.json()["state"] != "pending":
            raise SystemExit(f"request failed: {answer.status_code} {answer.text[:300]}")
        return str(answer.json()["id"])

    def usable_token(self, grant_id: str, schedule: Iterator[float], out: dict[str, float]) -> None:
        """Poll until a token is minted (409 while undecided), then list pods with it until 200."""
        intervals = schedule
        while True:
            answer = self.http.post(f"/v1/grants/{grant_id}/token")
            if answer.status_code == 200:
                break
            if answer.status_code != 409:
                raise SystemExit(f"token endpoint: {answer.status_code} {answer.text[:300]}")
            time.sleep(next(intervals))
        token = answer.json()["token"]
        retries = 0
        while True:
            used = self.kube.get(
                f"/api/v1/namespaces/{NAMESPACE}/pods", headers={"authorization": f"Bearer {token}"}
            )
            if used.status_code == 200:
                break
            if used.status_code != 403 or retries > 500:
                raise SystemExit(f"the token did not work: {used.status_code} {used.text[:300]}")
            retries += 1
            time.sleep(0.01)
        out["usable"] = time.monotonic()
        out["rbac_retries"] = retries

    def close(self) -> None:
        self.kube.close()
        self.http.close()


def notice_for(hooks: HookReceiver, grant_id: str) -> tuple[float, str] | None:
    for post in hooks.received("/hook"):
        if post.body.get("kind") == "needs_approval" and post.body.get("grant_id") == grant_id:
            return post.at, str(post.body["link"])
    return None


#: time.time() - time.monotonic(): turns the broker's wall-clock timestamps into this process's clock.
WALL_OFFSET = time.time() - time.monotonic()


def approved_at(http: httpx.Client, grant_id: str) -> float:
    """When the broker recorded the approval (same machine, same clock), on the monotonic clock: the
    moment the decision exists, not when the approver's page finished showing it."""
    grant = http.get(f"/v1/grants/{grant_id}").json()
    stamp = datetime.fromisoformat(grant["approvals"][0]["at"])
    return stamp.timestamp() - WALL_OFFSET


def run_round(
    requester: Requester,
    cluster: str,
    hooks: HookReceiver,
    approve: Callable[[str, str], None],
    schedule: Callable[[], Iterator[float]],
) -> tuple[list[float], int]:
    started = time.monotonic()
    grant_id = requester.request(cluster)
    out: dict[str, float] = {}
    poller = threading.Thread(target=requester.usable_token, args=(grant_id, schedule(), out), daemon=True)
    poller.start()
    notified, link = wait_for(lambda: notice_for(hooks, grant_id), f"the notice of {grant_id}")
    approve(grant_id, link)
    poller.join(timeout=120)
    if "usable" not in out:
        raise SystemExit(f"no usable token for {grant_id}")
    usable = out["usable"]
    approved = approved_at(requester.http, grant_id)
    revoked = requester.http.post(f"/v1/grants/{grant_id}/revoke", json={"reason": "bench round done"})
    revoked.raise_for_status()  # not timed: the next round starts from no open grant
    stages = [notified - started, approved - notified, usable - approved, usable - started]
    return stages, int(out["rbac_retries"])


def browser_approver(page: Page) -> Callable[[str, str], None]:
    def approve(grant_id: str, link: str) -> None:
        page.goto(link)
        page.get_by_role("button", name="Approve", exact=True).click()
        # A locator's wait, not wait_for_function: the pages' CSP forbids the eval that one polls with.
        expect(page.locator("#state")).to_have_text(re.compile(r"^\s*(approved|active)\s*$"), timeout=60_000)

    return approve


def api_approver(http: httpx.Client) -> Callable[[str, str], None]:
    def approve(grant_id: str, link: str) -> None:
        answer = http.post(f"/v1/grants/{grant_id}/approve", json={"comment": "bench"})
        if answer.status_code != 200 or answer.json()["state"] not in ("approved", "active"):
            raise SystemExit(f"approve failed: {answer.status_code} {answer.text[:300]}")

    return approve


def login(url: str, user: str) -> httpx.Client:
    token = httpx.post(f"{url}/v1/dev/login", json={"user": user}, timeout=30).json()["token"]
    return httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=30)


Plans = list[tuple[str, Callable[[], Iterator[float]]]]
Results = dict[tuple[str, str], list[list[float]]]


def schedules(spec: str) -> Plans:
    """``wait`` is `kubejit request --wait`'s backoff; a number is a fixed interval in seconds."""
    out: Plans = []
    for item in spec.split(","):
        if item == "wait":
            out.append(("polling as `request --wait` (0.5 s, x1.5)", poll_intervals))
        else:
            every = float(item)
            out.append((f"polling every {every:g} s", partial(repeat, every)))
    return out


def measure(
    url: str, plane: ControlPlane, hooks: HookReceiver, plans: Plans, rounds: int
) -> tuple[Results, int]:
    """Every schedule with both approvers, interleaved round by round: all see the same machine load."""
    ca = ssl.create_default_context(cafile=str(plane.ca_path))
    requester = Requester(login(url, "alice"), plane.server, ca)
    bob = login(url, "bob")
    results: Results = {}
    retries = 0
    try:
        with sync_playwright() as playwright:
            approvers = {"api": api_approver(bob)}
            browser = None
            if Path(CHROMIUM).exists():
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                sign_in(page, url, "bob")
                approvers = {"browser": browser_approver(page), **approvers}
            else:
                print(
                    f"no {CHROMIUM} (apt-get install chromium; scripts/test installs it): the API reference only"
                )
            for approve in approvers.values():  # warm every path
                run_round(requester, plane.name, hooks, approve, plans[-1][1])
            for _ in range(rounds):
                for label, schedule in plans:
                    for mode, approve in approvers.items():
                        stages, retried = run_round(requester, plane.name, hooks, approve, schedule)
                        results.setdefault((label, mode), []).append(stages)
                        retries += retried
            if browser is not None:
                browser.close()
    finally:
        requester.close()
        bob.close()
    return results, retries


def report(rounds: int, plans: Plans, results: Results, retries: int) -> None:
    print(f"\nrequest -> approved -> usable token, {rounds} rounds each, interleaved, on one loaded machine")
    print(f"{'(ms)':34} {'approver in the browser':>24} {'approver via the API (ref)':>28}")
    print(f"{'':34} {'p50':>11} {'p90':>11} {'p50':>15} {'p90':>11}")
    for label, _ in plans:
        print(f"requester {label}")
        for i, stage in enumerate(STAGES):
            cells = []
            for mode in ("browser", "api"):
                values = [r[i] for r in results.get((label, mode), [])]
                if not values:
                    cells.append(f"{'-':>11} {'-':>11}")
                    continue
                median, p90 = statistics.median(values) * 1000, percentile(values, 90) * 1000
                cells.append(f"{median:11.1f} {p90:11.1f}")
            print(f"  {stage:32} {cells[0]}    {cells[1]}")
    print(f"tokens refused by RBAC at first use and retried: {retries}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--polling", default="wait,0.05", help="token poll schedules: wait and/or seconds")
    args = parser.parse_args()
    plans = schedules(args.polling)
    with tempfile.TemporaryDirectory(prefix="kubejit-bench-") as tmp:
        work = Path(tmp)
        hooks = HookReceiver().start()
        try:
            with ControlPlane(work / "cluster", name="bench") as plane:
                with admin_client(plane) as admin:
                    creds = install_broker(
                        admin, cluster=plane.name, out=work / "broker.kubeconfig", namespaces=(NAMESPACE,)
                    )
                process, url = start_broker(work / "broker", creds.kubeconfig_path, plane, hooks)
                try:
                    results, retries = measure(url, plane, hooks, plans, args.rounds)
                finally:
                    process.terminate()
                    process.wait(timeout=30)
        finally:
            hooks.stop()
    report(args.rounds, plans, results, retries)


if __name__ == "__main__":
    main()
