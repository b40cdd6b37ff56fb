"""The HTTP boundary: bad input becomes 4xx problem+json and changes nothing; routes map domain errors."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey

from kubejit.clock import FixedClock
from kubejit.errors import ClusterUnavailable
from kubejit.grants.service import GrantService
from kubejit.identity.dev_issuer import DevIssuer
from kubejit.ids import GrantId
from kubejit.policy.load import parse_policy
from kubejit.server.app import create_app
from kubejit.server.deps import Services
from kubejit.server.schemas import ClusterOut
from tests.fakes import FakeCluster, MemoryStore

pytestmark = pytest.mark.unit

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
  - name: dev-edit
    groups: [developers]
    clusters: [dev]
    namespaces: ["team-*"]
    roles: [edit]
    duration: {default: 1h, max: 4h}
    approval: {approvers: 1, groups: [sre]}
    reason: required
"""


@dataclass
class World:
    http: TestClient
    store: MemoryStore
    cluster: FakeCluster
    issuer: DevIssuer

    def auth(self, user: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.issuer.issue(user)}"}

    @property
    def services(self) -> Services:
        """The app's services (``TestClient.app`` is typed as any ASGI app)."""
        assert isinstance(self.http.app, FastAPI)
        services: Services = self.http.app.state.services
        return services


@pytest.fixture
def world() -> Iterator[World]:
    clock = FixedClock()
    store, cluster = MemoryStore(), FakeCluster()
    ids = (GrantId(f"g{i}") for i in itertools.count(1))
    service = GrantService(
        store=store,
        audit=store,
        clusters={"dev": cluster},
        policy=parse_policy(POLICY),
        clock=clock,
        id_factory=lambda: next(ids),
    )
    users = {
        "alice": frozenset({"developers"}),
        "bob": frozenset({"sre"}),
        "root": frozenset({"platform-admins"}),
    }
    key = ECKey.generate_key("P-256", parameters={"kid": "k"}, private=True)
    issuer = DevIssuer(users=users, key=key, issuer="http://test/dev", clock=clock)
    services = Services(
        grants=service,
        authenticator=issuer,
        clusters=[ClusterOut(name="dev", audience="a")],
        dev_issuer=issuer,
    )
    # The dev issuer serves loopback clients only (TestClient's default client is "testclient").
    with TestClient(create_app(services, max_body_bytes=4096), client=("127.0.0.1", 50000)) as http:
        yield World(http, store, cluster, issuer)


GOOD = {"cluster": "dev", "namespaces": ["team-a"], "role": "view", "duration": "30m", "reason": "debug"}


def test_auto_request_is_active(world: World) -> None:
    r = world.http.post("/v1/grants", json=GOOD, headers=world.auth("alice"))
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "active"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**GOOD, "namespaces": ["Team_A"]}, "namespaces"),
        ({**GOOD, "namespaces": []}, "namespaces"),
        ({**GOOD, "namespaces": ["a" * 64]}, "namespaces"),
        ({**GOOD, "duration": "-5m"}, "duration"),
        ({**GOOD, "duration": "10y"}, "duration"),
        ({**GOOD, "surprise": True}, "surprise"),
        ({**GOOD, "reason": "x" * 1001}, "reason"),
        ({k: v for k, v in GOOD.items() if k != "cluster"}, "cluster"),
        ({**GOOD, "namespaces": "team-a"}, "namespaces"),
    ],
)
def test_bad_bodies_are_problem_json_and_change_nothing(
    world: World, body: dict[str, object], field: str
) -> None:
    r = world.http.post("/v1/grants", json=body, headers=world.auth("alice"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert field in r.text or "duration" in r.json()["detail"]
    assert world.store.grants == {} and world.cluster.objects == {}


def test_malformed_json_and_oversized_bodies(world: World) -> None:
    headers = {**world.auth("alice"), "content-type": "application/json"}
    r = world.http.post("/v1/grants", content=b'{"cluster": "dev",', headers=headers)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    big = {**GOOD, "reason": "x" * 5000}
    r = world.http.post("/v1/grants", json=big, headers=world.auth("alice"))
    assert r.status_code == 413 and r.json()["code"] == "body-too-large"
    assert world.store.grants == {}


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nope", "Basic abc", "Bearer a.b.c"])
def test_missing_or_bad_credentials_are_401_and_audited(world: World, header: str | None) -> None:
    headers = {"authorization": header} if header else {}
    r = world.http.post("/v1/grants", json=GOOD, headers=headers)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert world.store.actions() == ["auth.failed"] and world.store.grants == {}


def test_policy_refusal_names_the_rule(world: World) -> None:
    r = world.http.post("/v1/grants", json={**GOOD, "role": "admin"}, headers=world.auth("alice"))
    assert r.status_code == 403
    assert r.json()["code"] == "denied-by-policy" and r.json()["rule"] == "default-deny"
    r = world.http.post("/v1/grants", json={**GOOD, "duration": "5h"}, headers=world.auth("alice"))
    assert r.status_code == 403 and r.json()["rule"] == "dev-view" and "4h" in r.json()["detail"]
    r = world.http.post("/v1/grants", json={**GOOD, "cluster": "prod"}, headers=world.auth("alice"))
    assert r.status_code == 404 and "known: dev" in r.json()["detail"]
    assert world.store.grants == {} and world.cluster.objects == {}


def test_route_maps_self_approval_refusal_from_the_domain(world: World) -> None:
    created = world.http.post("/v1/grants", json={**GOOD, "role": "edit"}, headers=world.auth("alice")).json()
    assert created["state"] == "pending"
    r = world.http.post(f"/v1/grants/{created['id']}/approve", json={}, headers=world.auth("alice"))
    assert r.status_code == 403 and r.json()["code"] == "approval-refused"
    waiting = world.http.get(
        "/v1/grants", params={"scope": "pending-for-me"}, headers=world.auth("bob")
    ).json()
    assert [g["id"] for g in waiting] == [created["id"]]
    r = world.http.post(
        f"/v1/grants/{created['id']}/approve", json={"comment": "ok"}, headers=world.auth("bob")
    )
    assert r.json()["state"] == "active"


def test_unknown_grant_and_unknown_scope(world: World) -> None:
    assert world.http.get("/v1/grants/g999", headers=world.auth("alice")).status_code == 404
    r = world.http.get("/v1/grants", params={"scope": "everything"}, headers=world.auth("alice"))
    assert r.status_code == 422
    r = world.http.get("/v1/grants", params={"scope": "all"}, headers=world.auth("alice"))
    assert r.status_code == 403


def test_token_endpoint_returns_token_once_and_never_stores_it(world: World) -> None:
    grant = world.http.post("/v1/grants", json=GOOD, headers=world.auth("alice")).json()
    r = world.http.post(f"/v1/grants/{grant['id']}/token", headers=world.auth("alice"))
    assert r.status_code == 200 and r.json()["token"].startswith("secret-token-")
    assert all(r.json()["token"] not in repr(e) for e in world.store.events)
    assert world.http.post(f"/v1/grants/{grant['id']}/token", headers=world.auth("bob")).status_code == 403


def test_dev_login_and_whoami(world: World) -> None:
    token = world.http.post("/v1/dev/login", json={"user": "alice"}).json()["token"]
    me = world.http.get("/v1/whoami", headers={"authorization": f"Bearer {token}"}).json()
    assert me["name"] == "alice" and me["groups"] == ["developers"] and me["may_request"]
    miss = world.http.post("/v1/dev/login", json={"user": "eve"})
    assert miss.status_code == 404
    assert "alice" not in miss.text and "bob" not in miss.text  # never who is configured


@pytest.mark.parametrize(
    ("client", "headers"),
    [
        (("192.0.2.7", 4000), {}),
        (("testclient", 50000), {}),
        (("127.0.0.1", 4000), {"X-Forwarded-For": "192.0.2.7"}),
        (("127.0.0.1", 4000), {"X-Forwarded-Proto": "https"}),
        (("127.0.0.1", 4000), {"Forwarded": "for=192.0.2.7"}),
        (("::1", 4000), {"X-Real-IP": "192.0.2.7"}),
    ],
)
def test_dev_login_serves_only_loopback_clients_without_a_proxy(
    world: World, client: tuple[str, int], headers: dict[str, str]
) -> None:
    app = world.http.app
    with TestClient(app, client=client) as http:
        r = http.post("/v1/dev/login", json={"user": "alice"}, headers=headers)
    assert r.status_code == 403, r.text
    assert "token" not in r.json() and r.json()["detail"].startswith("the dev issuer serves only clients")
    assert [e for e in world.store.events if e.action == "auth.login"] == []


def test_dev_login_from_ipv6_loopback_is_served(world: World) -> None:
    with TestClient(world.http.app, client=("::1", 4000)) as http:
        assert http.post("/v1/dev/login", json={"user": "alice"}).status_code == 200


def test_whoami_says_a_glob_stops_short_of_protected_namespaces() -> None:
    from kubejit.server.routes_identity import describe_rule

    policy = parse_policy(
        "roles: {view: {clusterRole: view}, nodes: {clusterRole: node-reader, clusterScope: true}}\n"
        "rules:\n"
        "  - {name: open, users: ['*'], clusters: ['*'], namespaces: ['*', kube-system], roles: [view],"
        " approval: auto}\n"
        "  - {name: team, users: ['*'], clusters: [dev], namespaces: ['team-*'], roles: [view], approval: auto}\n"
        "  - {name: wide, users: ['*'], clusters: [dev], roles: [nodes], approval: auto}\n"
    )
    open_rule, team, wide = (describe_rule(r, protected=policy.protected_namespaces) for r in policy.rules)
    assert "in *, kube-system (not kube-node-lease, kube-public, kubejit, kubejit-grants) on *" in open_rule
    assert "in team-* on dev" in team
    assert "in the whole cluster on dev" in wide


UNAUTHENTICATED_EXTRAS = ["/metrics", "/openapi.json", "/docs", "/redoc"]


@pytest.mark.parametrize("path", UNAUTHENTICATED_EXTRAS)
def test_metrics_and_api_docs_are_404_when_not_exposed(world: World, path: str) -> None:
    services = world.services
    with TestClient(create_app(services, expose_metrics=False, expose_api_docs=False)) as closed:
        assert closed.get(path).status_code == 404
        assert closed.get("/healthz").status_code == 200
    assert world.http.get(path).status_code == 200  # exposed (what a loopback broker does by default)


def test_metrics_and_api_docs_are_exposed_independently(world: World) -> None:
    services = world.services
    with TestClient(create_app(services, expose_metrics=True, expose_api_docs=False)) as http:
        assert [http.get(p).status_code for p in UNAUTHENTICATED_EXTRAS] == [200, 404, 404, 404]
    with TestClient(create_app(services, expose_metrics=False, expose_api_docs=True)) as http:
        assert [http.get(p).status_code for p in UNAUTHENTICATED_EXTRAS] == [404, 200, 200, 200]


WIDE_POLICY = POLICY.replace(
    "  edit: {clusterRole: edit}\n",
    "  edit: {clusterRole: edit}\n  reader: {clusterRole: view, clusterScope: true}\n",
) + (
    "  - name: cluster-read\n    groups: [developers]\n    clusters: [dev]\n    roles: [reader]\n"
    "    duration: {max: 1h}\n    approval: auto\n"
)


@pytest.fixture
def wide(world: World) -> World:
    """The world with a cluster-wide role `reader` that developers may request."""
    world.services.grants.policy = parse_policy(WIDE_POLICY)
    return world


@pytest.mark.parametrize(
    "body", [{"cluster": "dev", "role": "reader"}, {"cluster": "dev", "namespaces": [], "role": "reader"}]
)
def test_a_cluster_wide_role_is_requested_without_namespaces(wide: World, body: dict[str, object]) -> None:
    r = wide.http.post("/v1/grants", json={**body, "reason": "audit"}, headers=wide.auth("alice"))
    assert r.status_code == 201, r.text
    assert (r.json()["state"], r.json()["namespaces"], r.json()["role"]) == ("active", [], "reader")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            {"cluster": "dev", "namespaces": ["team-a"], "role": "reader"},
            "is cluster-wide; a request for it names no namespaces",
        ),
        ({"cluster": "dev", "role": "view"}, "needs at least one namespace"),
        ({"cluster": "dev", "namespaces": [], "role": "edit"}, "needs at least one namespace"),
    ],
)
def test_the_wrong_shape_for_the_role_is_refused_and_changes_nothing(
    wide: World, body: dict[str, object], words: str
) -> None:
    r = wide.http.post("/v1/grants", json=body, headers=wide.auth("alice"))
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]
    assert wide.store.grants == {} and wide.cluster.objects == {}


def test_a_cluster_wide_role_still_needs_a_rule(wide: World) -> None:
    r = wide.http.post("/v1/grants", json={"cluster": "dev", "role": "reader"}, headers=wide.auth("bob"))
    assert r.status_code == 403, r.text
    assert wide.store.grants == {} and wide.cluster.objects == {}


def test_metrics_say_whether_each_cluster_answered_the_reconciler(world: World) -> None:
    service = world.services.grants
    assert "kubejit_cluster_reachable{" not in world.http.get("/metrics").text  # not looked at yet
    world.cluster.fail_list = ClusterUnavailable("down")
    service.reconcile()
    assert 'kubejit_cluster_reachable{cluster="dev"} 0.0' in world.http.get("/metrics").text
    world.cluster.fail_list = None
    service.reconcile()
    assert 'kubejit_cluster_reachable{cluster="dev"} 1.0' in world.http.get("/metrics").text


def test_request_metrics_use_route_templates_and_bounded_methods(world: World) -> None:
    from kubejit import metrics

    def count(**labels: str) -> float:
        found = metrics.REGISTRY.get_sample_value("kubejit_http_request_duration_seconds_count", labels)
        return found or 0.0

    one = {"route": "/v1/grants/{grant_id}", "method": "GET", "status": "4xx"}
    odd = {"route": "unmatched", "method": "other", "status": "4xx"}
    before = (count(**one), count(**odd))
    assert world.http.get("/v1/grants/g-unknown-1", headers=world.auth("alice")).status_code == 404
    assert world.http.request("BREW", "/coffee/g-unknown-1").status_code == 404
    assert (count(**one), count(**odd)) == (before[0] + 1, before[1] + 1)
    text = world.http.get("/metrics").text
    assert "g-unknown-1" not in text and "BREW" not in text and "/coffee" not in text


def test_answers_carry_the_callers_request_id_or_a_fresh_one(world: World) -> None:
    kept = world.http.get("/livez", headers={"x-request-id": "abc-1"})
    assert kept.headers["x-request-id"] == "abc-1"
    fresh = world.http.get("/livez", headers={"x-request-id": "two words"}).headers["x-request-id"]
    assert len(fresh) == 32 and fresh != "two words"
