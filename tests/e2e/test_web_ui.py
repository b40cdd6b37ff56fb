"""The web pages in a real browser (Debian's chromium, driven by Playwright) on a real broker process
and real control planes: sign in, request, a second person approves from the notification's link, the
first sees it active without a reload, revokes; self-approval and a forged cross-site post are refused;
sign-out ends the session. A screenshot of each page goes to $KUBEJIT_ARTIFACTS (artifacts/screenshots).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from kubejit.notify.message import request_link
from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.dex import ALICE, CLI_CLIENT, Dex, DexBrowser
from kubejit.testing.processes import free_port
from tests.broker_identity import BrokerIdentity
from tests.broker_process import Broker
from tests.notify_receivers import NOTIFY_HMAC_KEY, HookReceiver
from tests.polling import eventually, poll

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
WEB_POLICY = """
roles:
  view: {clusterRole: view}
  edit: {clusterRole: edit}
  admin: {clusterRole: admin}
adminGroups: [platform-admins]
rules:
  - name: web-auto
    groups: [developers]
    clusters: ["*"]
    namespaces: ["e2e-*"]
    roles: [view]
    duration: {default: 1h, max: 4h}
    approval: auto
  - name: web-one-approver
    groups: [developers]
    clusters: ["*"]
    namespaces: ["e2e-*"]
    roles: [admin]
    duration: {default: 1h, max: 2h}
    approval: {approvers: 1, groups: [sre]}
    reason: required
  - name: web-dex-person
    users: ["dex:alice@example.com"]
    clusters: ["*"]
    namespaces: ["e2e-*"]
    roles: [view]
    approval: auto
"""


def artifacts() -> Path:
    configured = os.environ.get("KUBEJIT_ARTIFACTS")
    shots = (
        Path(configured) if configured else Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
    )
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(artifacts() / f"{name}.png"), full_page=True)


@pytest.fixture
def hooks() -> Iterator[HookReceiver]:
    """The approvers' webhook channel: the link bob follows is the one its notification carried."""
    receiver = HookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def web_broker(
    tmp_path: Path,
    broker_identity: BrokerIdentity,
    second_broker_identity: BrokerIdentity,
    hooks: HookReceiver,
) -> Iterator[Broker]:
    key = tmp_path / "notify-hmac.key"
    key.write_bytes(NOTIFY_HMAC_KEY)
    channel = {
        "name": "hook",
        "type": "webhook",
        "url": hooks.url("/hook"),
        "hmacKey": {"fromFile": str(key)},
    }
    notifications = {"channels": [channel], "routes": [{"channels": ["hook"], "approverGroups": ["sre"]}]}
    running = Broker(
        tmp_path / "broker",
        [broker_identity, second_broker_identity],
        policy=WEB_POLICY,
        extra_config={"notifications": notifications},
    )
    running.workdir.mkdir()
    running.start()
    yield running
    running.stop()


def notified_link(hooks: HookReceiver, grant_id: str) -> str:
    """The link in the needs-approval notice the approvers' channel received for ``grant_id``."""

    def link() -> str:
        for post in hooks.received("/hook"):
            if post.body.get("kind") == "needs_approval" and post.body.get("grant_id") == grant_id:
                return str(post.body["link"])
        return ""

    found = poll(link, bool, within=30)
    assert found, f"no needs-approval notice for {grant_id} reached the webhook"
    return found


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


class AttackerSite:
    """Another origin on loopback (same *site* as the broker: its cookie is sent, SameSite alone
    does not stop this post), serving a page whose form posts to the broker."""

    def __init__(self, html: str) -> None:
        body = html.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sign_in(page: Page, broker: Broker, user: str, *, at: str = "/ui/") -> None:
    page.goto(broker.url + at)
    assert "/ui/sign-in" in page.url
    page.get_by_role("link", name=re.compile("Sign in with")).click()
    page.get_by_label(re.compile(rf"^{user}\b")).check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state()
    assert page.get_by_text(f"Signed in as {user}").is_visible()


def fits_width(page: Page) -> bool:
    """No sideways scrolling of the page itself (wide tables scroll inside their own region)."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def state_of(page: Page) -> str:
    return (page.locator("#state").text_content() or "").strip()


def api_state(broker: Broker, user: str, grant_id: str) -> str:
    token = httpx.post(f"{broker.url}/v1/dev/login", json={"user": user}, timeout=10).json()["token"]
    answer = httpx.get(
        f"{broker.url}/v1/grants/{grant_id}", headers={"authorization": f"Bearer {token}"}, timeout=10
    )
    return str(answer.json()["state"])


def request_needing_approval(alice: Page, cluster: str, ns: str) -> str:
    """Fill the request form; the decision and its rule show before submit. Returns the grant id."""
    alice.get_by_role("link", name="Request access", exact=True).first.click()
    alice.get_by_label("Cluster").select_option(cluster)
    alice.get_by_label("Namespaces").fill(ns)
    alice.get_by_label("Role").select_option("admin")
    alice.get_by_label("Reason").fill("fix <the> refunds & more")
    alice.get_by_label("Ticket").fill("OPS-7")
    decision = poll(lambda: alice.locator("#decision").text_content() or "", lambda t: "Needs approval" in t)
    assert "web-one-approver" in decision, decision
    assert fits_width(alice)
    shot(alice, "03-request-form")
    alice.get_by_role("button", name="Request access").click()
    alice.wait_for_url(re.compile(r"/ui/requests/g[0-9a-f]+$"))
    grant_id = alice.url.rsplit("/", 1)[1]
    return grant_id


def approve_from_link(bob: Page, broker: Broker, grant_id: str, hooks: HookReceiver) -> None:
    """Bob follows the link the notification carried, signs in, lands on the request, approves."""
    link = notified_link(hooks, grant_id)
    assert link == request_link(broker.url, grant_id)
    sign_in(bob, broker, "bob", at=link.removeprefix(broker.url))
    assert bob.url == link
    rules = bob.get_by_role("region", name="Rules of admin")
    assert "pods" in (rules.text_content() or "")  # what the ClusterRole allows, read from the cluster
    # ... and, above its long table, the few rights of Kubernetes' own `admin` that reach past the grant.
    caution = bob.get_by_role("note", name="Beyond the role's name").text_content() or ""
    assert "act as other accounts (impersonate)" in caution and "read Secrets" in caution, caution
    assert "exec or attach into pods" in caution and "create pods or workloads" in caution
    bob.goto(broker.url + "/ui/approvals")
    assert bob.get_by_role("link", name=re.compile("alice")).first.is_visible()
    shot(bob, "06-approvals")
    bob.goto(link)
    shot(bob, "07-request-page-approver")
    bob.get_by_label("Comment").fill("looks right")
    bob.get_by_role("button", name="Approve").click()
    assert state_of(bob) == "active"


def test_request_approve_from_the_link_live_update_revoke(
    web_broker: Broker,
    hooks: HookReceiver,
    browser: Browser,
    namespaces: Callable[[ControlPlane, int], list[str]],
    broker_identity: BrokerIdentity,
) -> None:
    cluster = broker_identity.plane.name
    [ns] = namespaces(broker_identity.plane, 1)
    alice = browser.new_context(viewport={"width": 360, "height": 740}).new_page()  # a phone's width
    bob = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()

    alice.goto(web_broker.url + "/ui/")
    shot(alice, "01-sign-in")
    alice.get_by_role("link", name=re.compile("Sign in with")).click()
    shot(alice, "02-dev-issuer-picker")
    alice.get_by_label(re.compile(r"^alice\b")).check()
    alice.get_by_role("button", name="Continue").click()
    assert alice.url.endswith("/ui/grants") and alice.get_by_text("Signed in as alice").is_visible()
    alice.keyboard.press("Tab")  # the keyboard's first stop is the skip link, then the navigation
    assert alice.evaluate("document.activeElement.textContent") == "Skip to content"
    assert fits_width(alice)

    grant_id = request_needing_approval(alice, cluster, ns)
    assert state_of(alice) == "pending"
    assert alice.get_by_text("fix <the> refunds & more").is_visible()  # shown as text, not markup
    shot(alice, "04-request-page-pending")

    # Alice cannot decide her own request: no Approve or Deny for her, the page says why (a forged
    # POST is refused: tests/unit/web/test_web_pages.py), the grant stays pending.
    assert alice.get_by_role("button", name="Approve").count() == 0
    assert alice.get_by_role("button", name="Deny").count() == 0
    assert alice.get_by_text("Not yours to decide: you cannot approve or deny your own request").is_visible()
    shot(alice, "05-self-approval-not-offered")
    assert api_state(web_broker, "alice", grant_id) == "pending"
    alice.goto(f"{web_broker.url}/ui/requests/{grant_id}")
    alice.evaluate("window.kubejitSamePage = true")  # gone if the page reloads

    approve_from_link(bob, web_broker, grant_id, hooks)

    # Alice's open page turns active by itself (htmx polling), without a reload.
    assert poll(lambda: state_of(alice), lambda s: s == "active", within=30) == "active"
    assert alice.evaluate("window.kubejitSamePage === true")
    assert alice.get_by_text(f"kubejit kubeconfig --grant {grant_id} --use").is_visible()
    assert alice.get_by_text("looks right").is_visible()  # bob's comment, in the history
    assert fits_width(alice)
    shot(alice, "08-request-page-active")

    alice.get_by_role("button", name="Revoke").click()
    assert poll(lambda: state_of(alice), lambda s: s == "revoked") == "revoked"
    assert api_state(web_broker, "alice", grant_id) == "revoked"
    alice.goto(web_broker.url + "/ui/grants")
    shot(alice, "09-my-grants")


def test_forged_cross_site_posts_change_nothing_and_sign_out_ends_the_session(
    web_broker: Broker,
    browser: Browser,
    namespaces: Callable[[ControlPlane, int], list[str]],
    broker_identity: BrokerIdentity,
) -> None:
    [ns] = namespaces(broker_identity.plane, 1)
    alice = browser.new_context().new_page()
    sign_in(alice, web_broker, "alice")
    alice.goto(web_broker.url + "/ui/request")
    alice.get_by_label("Cluster").select_option(broker_identity.plane.name)
    alice.get_by_label("Namespaces").fill(ns)
    alice.get_by_label("Role").select_option("view")
    alice.get_by_role("button", name="Request access").click()
    alice.wait_for_url(re.compile(r"/ui/requests/g[0-9a-f]+$"))
    grant_id = alice.url.rsplit("/", 1)[1]
    assert state_of(alice) == "active"
    stolen_looking = "0" * 64
    attacker = AttackerSite(
        f"""<!doctype html><title>win a prize</title>
        <form method="post" action="{web_broker.url}/ui/grants/{grant_id}/revoke">
          <button id="no-token">Claim</button></form>
        <form method="post" action="{web_broker.url}/ui/grants/{grant_id}/revoke">
          <input type="hidden" name="csrf_token" value="{stolen_looking}"><button id="wrong-token">Claim</button></form>
        <form method="post" action="{web_broker.url}/ui/sign-out"><button id="sign-out">Claim</button></form>"""
    )
    try:
        for button in ("no-token", "wrong-token", "sign-out"):
            alice.goto(attacker.url)
            alice.locator(f"#{button}").click()
            alice.wait_for_load_state()
            assert alice.get_by_text("nothing was changed").is_visible(), button
            if button == "no-token":
                shot(alice, "10-forged-post-refused")
    finally:
        attacker.close()
    assert api_state(web_broker, "alice", grant_id) == "active"
    alice.goto(web_broker.url + "/ui/grants")
    assert alice.get_by_text("Signed in as alice").is_visible()  # the forged sign-out did nothing

    alice.get_by_role("button", name="Sign out").click()
    alice.wait_for_url(re.compile(r"/ui/signed-out$"))
    shot(alice, "11-signed-out")
    alice.goto(web_broker.url + "/ui/grants")
    eventually(lambda: "/ui/sign-in" in alice.url, what="a signed-out browser is sent to sign in")


def test_admin_pages(web_broker: Broker, browser: Browser) -> None:
    root = browser.new_context().new_page()
    sign_in(root, web_broker, "root")
    for path, name in (
        ("/ui/admin/grants", "12-admin-grants"),
        ("/ui/admin/locks", "13-admin-locks"),
        ("/ui/admin/users", "14-admin-users"),
        ("/ui/admin/audit?action=auth.login", "15-admin-audit"),
    ):
        root.goto(web_broker.url + path)
        assert root.locator("h1").is_visible()
        shot(root, name)
    assert root.get_by_text("auth.login").first.is_visible()


@pytest.fixture
def dex(tmp_path: Path) -> Iterator[Dex]:
    with Dex(tmp_path / "dex") as running:
        yield running


def test_sign_in_at_an_oidc_provider(
    tmp_path: Path, dex: Dex, broker_identity: BrokerIdentity, second_broker_identity: BrokerIdentity
) -> None:
    """Code + PKCE at a real provider (Dex): the broker redeems the code and verifies the ID token.

    Dex lets its public client redirect only to ``http://localhost``, so the broker's public URL says
    localhost here; the browser's part is played by httpx and ``DexBrowser`` (Dex's login form).
    """
    issuer = {"name": "dex", "issuerUrl": dex.issuer, "audience": CLI_CLIENT, "usernameClaim": "email"}
    broker = Broker(tmp_path / "broker", [broker_identity, second_broker_identity], policy=WEB_POLICY)
    public = f"http://localhost:{broker.port}"
    broker.extra_config = {
        "broker": {"publicUrl": public},
        "identity": {"issuers": [issuer]},
        "devIssuer": {"enabled": False},
        "web": {"issuer": "dex", "clientId": CLI_CLIENT},
    }
    broker.workdir.mkdir()
    broker.start()
    try:
        with httpx.Client(base_url=public, timeout=30) as browser:
            start = browser.get("/ui/auth/start", params={"next": "/ui/request"})
            authorize = start.headers["location"]
            assert authorize.startswith(dex.issuer) and "code_challenge_method=S256" in authorize
            assert "nonce=" in authorize and "state=" in authorize
            callback = DexBrowser(dex).authorize(authorize, user=ALICE)
            assert callback.startswith(f"{public}/ui/auth/callback?")
            done = browser.get(callback)
            assert done.status_code == 303 and done.headers["location"] == "/ui/request", done.text
            page = browser.get("/ui/request")
            assert "Signed in as <strong>dex:alice@example.com</strong>" in page.text
            assert "web-dex-person" in page.text  # the choices policy gives this person
            replay = browser.get(callback)  # the same code and state again: the attempt is spent
            assert replay.status_code == 401
    finally:
        broker.stop()
