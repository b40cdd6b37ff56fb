"""The web pages in-process: dev sign-in (code + PKCE, state, nonce), sessions, CSRF and Origin checks,
and the same service rules as the API (self-approval refused, visibility, admin-only pages)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey

from kubejit.clock import FixedClock
from kubejit.clusters.scan.escalation import past_the_grant
from kubejit.grants.locks import LockKind
from kubejit.grants.model import GrantState
from kubejit.grants.service import GrantService
from kubejit.identity.dev_issuer import DevIssuer
from kubejit.identity.principal import Principal
from kubejit.ids import GrantId
from kubejit.policy.load import parse_policy
from kubejit.server.app import create_app
from kubejit.server.audit_records import login_event
from kubejit.server.deps import Services, admit
from kubejit.server.schemas import ClusterOut
from kubejit.store.audit_store import SqlAuditStore
from kubejit.store.engine import create_store_engine
from kubejit.store.grant_store import SqlGrantStore
from kubejit.store.locks import SqlLockStore
from kubejit.store.migrate import upgrade
from kubejit.store.web_sessions import SqlWebSessionStore
from kubejit.web import pages
from kubejit.web.context import WebContext
from kubejit.web.sessions import digest
from kubejit.web.sign_in import DevSignIn
from tests.fakes import FakeCluster

pytestmark = pytest.mark.unit

BROKER = "http://127.0.0.1:8080"
POLICY = """
roles:
  view: {clusterRole: view}
  edit: {clusterRole: edit}
adminGroups: [platform-admins]
rules:
  - name: dev-view
    groups: [developers]
    clusters: [dev]
    namespaces: ["team-*"]
    roles: [view]
    duration: {default: 1h, max: 4h}
    approval: auto
    extendable: true
  - name: dev-edit
    groups: [developers]
    clusters: [dev]
    namespaces: ["team-*"]
    roles: [edit]
    duration: {default: 1h, max: 4h}
    approval: {approvers: 1, groups: [sre]}
    reason: required
"""
USERS = {"alice": {"developers"}, "bob": {"sre"}, "carol": {"qa"}, "root": {"platform-admins"}}


@dataclass
class World:
    clock: FixedClock
    grants: GrantService
    sessions: SqlWebSessionStore
    app_services: Services

    def browser(self) -> TestClient:
        app = create_app(self.app_services)
        return TestClient(app, base_url=BROKER, client=("127.0.0.1", 50000), follow_redirects=False)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = FixedClock()
    engine = create_store_engine(f"sqlite:///{tmp_path / 'kubejit.db'}")
    upgrade(engine)
    audit = SqlAuditStore(engine)
    ids = (GrantId(f"g{i}") for i in itertools.count(1))
    grants = GrantService(
        store=SqlGrantStore(engine, clock=clock),
        audit=audit,
        clusters={"dev": FakeCluster()},
        policy=parse_policy(POLICY),
        clock=clock,
        id_factory=lambda: next(ids),
        locks=SqlLockStore(engine),
    )
    key = ECKey.generate_key("P-256", parameters={"kid": "k"}, private=True)
    dev = DevIssuer(
        users={u: frozenset(g) for u, g in USERS.items()}, key=key, issuer=BROKER + "/dev", clock=clock
    )
    services = Services(grants=grants, authenticator=dev, clusters=[ClusterOut(name="dev", audience="a")])
    sessions = SqlWebSessionStore(engine)
    services.web = WebContext(
        grants=grants,
        sessions=sessions,
        sign_in=DevSignIn(dev, clock=clock),
        audit=audit,
        public_url=BROKER,
        role_cautions=past_the_grant,
        on_request=lambda who: admit(services, who),
        on_sign_in=lambda who: audit.record([login_event(who.name, issuer=who.issuer, at=clock.now())]),
    )
    yield World(clock, grants, sessions, services)
    engine.dispose()


def sign_in(http: TestClient, user: str) -> None:
    start = http.get("/ui/auth/start", params={"next": "/ui/grants"})
    assert start.status_code == 303
    picker = http.get(start.headers["location"])
    assert picker.status_code == 200 and "Development issuer" in picker.text
    params = {k: v[0] for k, v in parse_qs(urlsplit(start.headers["location"]).query).items()}
    back = http.post("/ui/dev/authorize", data={**params, "user": user}, headers={"origin": BROKER})
    assert back.status_code == 303
    done = http.get(back.headers["location"])
    assert done.status_code == 303 and done.headers["location"] == "/ui/grants", done.text


def csrf(http: TestClient, path: str = "/ui/grants") -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', http.get(path).text)
    assert found is not None
    return found.group(1)


def test_sign_in_sets_a_locked_down_cookie_and_stores_only_its_hash(world: World) -> None:
    with world.browser() as http:
        sign_in(http, "alice")
        session_id = http.cookies["kubejit-session"]
        page = http.get("/ui/grants")
    assert page.status_code == 200 and "Signed in as <strong>alice</strong>" in page.text
    assert len(session_id) >= 43  # 256 bits, URL-safe base64
    stored = world.sessions.get_session(digest(session_id))
    assert stored is not None and stored.principal.name == "alice"
    assert world.sessions.get_session(session_id) is None  # the id itself is not a key
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text and " on" + "click=" not in page.text


def test_the_cookie_flags(world: World) -> None:
    with world.browser() as http:
        sign_in(http, "alice")
        start = http.get("/ui/auth/start")
    # Read the Set-Cookie of a fresh callback: HttpOnly, SameSite=Lax (Secure is off only on loopback http).
    cookie = start.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie


def test_secure_cookies_except_on_loopback_http(world: World) -> None:
    web = world.app_services.web
    assert web is not None and not web.secure_cookies
    web.public_url = "https://kubejit.example.com"
    assert web.secure_cookies and web.session_cookie == "__Host-kubejit-session"


def test_a_callback_with_another_state_is_refused(world: World) -> None:
    with world.browser() as http:
        start = http.get("/ui/auth/start")
        params = {k: v[0] for k, v in parse_qs(urlsplit(start.headers["location"]).query).items()}
        back = http.post("/ui/dev/authorize", data={**params, "user": "alice"}, headers={"origin": BROKER})
        code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
        refused = http.get("/ui/auth/callback", params={"code": code, "state": "forged"})
        assert refused.status_code == 401 and "state does not match" in refused.text
        assert "kubejit-session" not in http.cookies
        # The attempt is spent: the right state afterwards opens nothing either.
        again = http.get("/ui/auth/callback", params={"code": code, "state": params["state"]})
        assert again.status_code == 401 and "kubejit-session" not in http.cookies


def test_a_callback_in_another_browser_is_refused(world: World) -> None:
    """Login CSRF: an attacker's code and state, replayed into a victim's browser, opens no session."""
    with world.browser() as attacker, world.browser() as victim:
        start = attacker.get("/ui/auth/start")
        params = {k: v[0] for k, v in parse_qs(urlsplit(start.headers["location"]).query).items()}
        back = attacker.post("/ui/dev/authorize", data={**params, "user": "root"}, headers={"origin": BROKER})
        refused = victim.get(back.headers["location"])
    assert refused.status_code == 401 and "started no sign-in" in refused.text


def test_a_wrong_pkce_verifier_is_refused(world: World) -> None:
    web = world.app_services.web
    assert web is not None and web.dev is not None
    code = web.dev.grant_code(
        user="alice", nonce="n", challenge="x" * 43, method="S256", redirect_uri=web.redirect_uri
    )
    with pytest.raises(Exception, match="PKCE verifier"):
        web.dev.redeem(code=code, code_verifier="y" * 43, redirect_uri=web.redirect_uri, nonce="n")


def test_pages_need_a_session(world: World) -> None:
    with world.browser() as http:
        page = http.get("/ui/approvals")
        post = http.post("/ui/request", data={"cluster": "dev"})
    assert page.status_code == 303 and page.headers["location"] == "/ui/sign-in?next=/ui/approvals"
    assert post.status_code == 401 and "text/html" in post.headers["content-type"]


def test_request_approve_and_self_approval_refused(world: World) -> None:
    with world.browser() as alice, world.browser() as bob:
        sign_in(alice, "alice")
        token = csrf(alice, "/ui/request")
        check = alice.get(
            "/ui/request/check",
            params={"cluster": "dev", "namespaces": "team-a", "role": "edit", "reason": "x"},
        )
        assert "Needs approval" in check.text and "dev-edit" in check.text
        made = alice.post(
            "/ui/request",
            data={
                "csrf_token": token,
                "cluster": "dev",
                "namespaces": "team-a",
                "role": "edit",
                "reason": "fix",
            },
            headers={"origin": BROKER},
        )
        assert made.status_code == 303 and made.headers["location"] == "/ui/requests/g1"
        own = alice.post("/ui/requests/g1/approve", data={"csrf_token": token}, headers={"origin": BROKER})
        assert own.status_code == 403 and "your own request" in own.text
        assert world.grants.store.get(GrantId("g1")).state is GrantState.PENDING
        sign_in(bob, "bob")
        waiting = bob.get("/ui/approvals")
        assert "/ui/requests/g1" in waiting.text and 'action="/ui/requests/g1/approve"' in waiting.text
        page = bob.get("/ui/requests/g1")
        assert "grant.requested" in page.text and "Approve" in page.text
        bob_token = csrf(bob, "/ui/requests/g1")
        done = bob.post(
            "/ui/requests/g1/approve",
            data={"csrf_token": bob_token, "comment": "ok"},
            headers={"origin": BROKER},
        )
        assert done.status_code == 303
        live = alice.get("/ui/requests/g1/live")
        assert (
            'id="state" role="status">active<' in live.text
            and "kubejit kubeconfig --grant g1 --use" in live.text
        )


def test_someone_outside_the_approver_groups_does_not_see_the_request(world: World) -> None:
    with world.browser() as alice, world.browser() as carol:
        sign_in(alice, "alice")
        token = csrf(alice)
        alice.post(
            "/ui/request",
            data={
                "csrf_token": token,
                "cluster": "dev",
                "namespaces": "team-a",
                "role": "edit",
                "reason": "r",
            },
            headers={"origin": BROKER},
        )
        sign_in(carol, "carol")
        assert carol.get("/ui/requests/g1").status_code == 404
        assert carol.get("/ui/admin/grants").status_code == 403


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"origin": BROKER}, None),  # no token
        ({"origin": BROKER}, "0" * 64),  # a wrong token
        ({"origin": "https://evil.example"}, "right"),  # the right token, from another site
        ({"sec-fetch-site": "cross-site"}, "right"),
    ],
)
def test_a_forged_post_changes_nothing(world: World, headers: dict[str, str], field: str | None) -> None:
    with world.browser() as alice:
        sign_in(alice, "alice")
        token = csrf(alice)
        form = {"cluster": "dev", "namespaces": "team-a", "role": "view", "reason": "r"}
        if field is not None:
            form["csrf_token"] = token if field == "right" else field
        refused = alice.post("/ui/request", data=form, headers=headers)
    assert refused.status_code == 403 and "nothing was changed" in refused.text
    assert world.grants.store.list() == []


def test_sign_out_ends_the_session_server_side(world: World) -> None:
    with world.browser() as alice:
        sign_in(alice, "alice")
        session_id = alice.cookies["kubejit-session"]
        out = alice.post("/ui/sign-out", data={"csrf_token": csrf(alice)}, headers={"origin": BROKER})
        assert out.status_code == 303 and out.headers["location"] == "/ui/signed-out"
    assert world.sessions.get_session(digest(session_id)) is None
    with world.browser() as replay:
        replay.cookies.set("kubejit-session", session_id)
        assert replay.get("/ui/grants").status_code == 303  # back to sign-in


def test_idle_and_absolute_expiry(world: World) -> None:
    with world.browser() as alice:
        sign_in(alice, "alice")
        world.clock.advance(timedelta(minutes=29))
        assert alice.get("/ui/grants").status_code == 200  # activity keeps it
        world.clock.advance(timedelta(minutes=29))
        assert alice.get("/ui/grants").status_code == 200
        world.clock.advance(timedelta(minutes=31))
        assert alice.get("/ui/grants").status_code == 303  # idle too long
        sign_in(alice, "alice")
        for _ in range(26):
            world.clock.advance(timedelta(minutes=29))
            alice.get("/ui/grants")
        assert alice.get("/ui/grants").status_code == 303  # past 12 hours, however active


def test_errors_are_problem_pages(world: World) -> None:
    with world.browser() as alice:
        sign_in(alice, "alice")
        missing = alice.get("/ui/requests/nope")
        bad = alice.post("/ui/request", content=b"{}", headers={"content-type": "application/json"})
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    assert "Traceback" not in missing.text and "not found" in missing.text
    assert bad.status_code == 400 and "x-www-form-urlencoded" in bad.text


def test_unknown_pages_are_problem_pages_and_static_files_are_served(world: World) -> None:
    with world.browser() as http:
        unknown = http.get("/ui/nowhere")
        root = http.get("/ui")
        script = http.get("/ui/static/htmx.min.js")
    assert unknown.status_code == 404 and "there is no page /ui/nowhere" in unknown.text
    assert "text/html" in unknown.headers["content-type"]
    assert root.status_code == 308 and root.headers["location"] == "/ui/"
    assert script.status_code == 200 and "htmx" in script.text


def test_open_redirects_are_refused(world: World) -> None:
    with world.browser() as http:
        start = http.get("/ui/auth/start", params={"next": "//evil.example/x"})
        params = {k: v[0] for k, v in parse_qs(urlsplit(start.headers["location"]).query).items()}
        back = http.post("/ui/dev/authorize", data={**params, "user": "alice"}, headers={"origin": BROKER})
        done = http.get(back.headers["location"])
    assert done.headers["location"] == "/ui/"


def test_admin_pages(world: World) -> None:
    with world.browser() as root:
        sign_in(root, "root")
        for path in ("/ui/admin/grants", "/ui/admin/locks", "/ui/admin/users", "/ui/admin/audit"):
            assert root.get(path).status_code == 200, path
        found = root.get("/ui/admin/audit", params={"action": "auth.login"})
        assert "auth.login" in found.text
        assert root.get("/ui/admin/audit", params={"since": "yesterday"}).status_code == 422


def test_deny_from_the_approvals_list_with_a_comment(world: World) -> None:
    with world.browser() as alice, world.browser() as bob:
        sign_in(alice, "alice")
        alice.post(
            "/ui/request",
            data={
                "csrf_token": csrf(alice),
                "cluster": "dev",
                "namespaces": "team-a",
                "role": "edit",
                "reason": "r",
            },
            headers={"origin": BROKER},
        )
        sign_in(bob, "bob")
        done = bob.post(
            "/ui/requests/g1/deny",
            data={"csrf_token": csrf(bob, "/ui/approvals"), "comment": "not now", "next": "/ui/approvals"},
            headers={"origin": BROKER},
        )
        assert done.status_code == 303 and done.headers["location"] == "/ui/approvals"
        assert "0 request(s) wait" in bob.get("/ui/approvals").text
        assert "0 request(s) wait" in bob.get("/ui/approvals", params={"all": "1"}).text
    denied = world.grants.store.get(GrantId("g1"))
    assert denied.state is GrantState.DENIED and "not now" in denied.end_reason


def test_the_approvals_page_lists_the_newest_and_links_to_all(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "APPROVALS_SHOWN", 1)
    with world.browser() as alice, world.browser() as bob:
        sign_in(alice, "alice")
        for ns in ("team-a", "team-b"):
            alice.post(
                "/ui/request",
                data={
                    "csrf_token": csrf(alice),
                    "cluster": "dev",
                    "namespaces": ns,
                    "role": "edit",
                    "reason": "r",
                },
                headers={"origin": BROKER},
            )
        sign_in(bob, "bob")
        newest = bob.get("/ui/approvals").text
        every = bob.get("/ui/approvals", params={"all": "1"}).text
    assert "2 request(s) wait" in newest and "the newest 1 are shown" in newest
    assert "/ui/requests/g2" in newest and "/ui/requests/g1" not in newest
    assert "/ui/requests/g1" in every and "show all" not in every


def test_a_locked_person_is_refused_on_every_page_and_gets_no_session(world: World) -> None:
    root = Principal(name="root", groups=frozenset({"platform-admins"}))
    with world.browser() as alice:
        sign_in(alice, "alice")
        world.grants.lockouts.lock(root, kind=LockKind.USER, target="alice", reason="left the company")
        world.clock.advance(timedelta(seconds=2))  # past the per-process lock cache
        refused = alice.get("/ui/grants")
        assert refused.status_code == 403 and "left the company" in refused.text
    with world.browser() as again, pytest.raises(AssertionError):
        sign_in(again, "alice")


def test_only_someone_who_may_decide_is_offered_the_decide_form(world: World) -> None:
    """The requester (and an admin outside the approver groups) read why instead; an approver who
    has approved already may still deny."""
    world.grants.policy = parse_policy(POLICY.replace("approvers: 1", "approvers: 2"))
    with world.browser() as alice, world.browser() as bob, world.browser() as root:
        sign_in(alice, "alice")
        token = csrf(alice, "/ui/request")
        fields = {
            "csrf_token": token,
            "cluster": "dev",
            "namespaces": "team-a",
            "role": "edit",
            "reason": "x",
        }
        assert alice.post("/ui/request", data=fields, headers={"origin": BROKER}).status_code == 303
        own = alice.get("/ui/requests/g1").text
        assert (
            'id="decide-title"' in own
            and "Not yours to decide: you cannot approve or deny your own request g1." in own
        )
        assert "Ask someone in sre." in own
        assert "/ui/requests/g1/approve" not in own and "/ui/requests/g1/deny" not in own
        sign_in(root, "root")
        admin = root.get("/ui/requests/g1").text
        assert "Not yours to decide: root is not an approver for grant g1 (rule &#39;dev-edit&#39;)." in admin
        assert "/ui/requests/g1/approve" not in admin
        sign_in(bob, "bob")
        page = bob.get("/ui/requests/g1").text
        assert 'action="/ui/requests/g1/approve"' in page and ">Approve</button>" in page
        done = bob.post(
            "/ui/requests/g1/approve",
            data={"csrf_token": csrf(bob, "/ui/requests/g1")},
            headers={"origin": BROKER},
        )
        assert done.status_code == 303
        again = bob.get("/ui/requests/g1").text
        assert (
            "Approve is not offered: bob has already approved grant g1." in again
            and ">Approve</button>" not in again
        )
        assert 'formaction="/ui/requests/g1/deny"' in again
