"""The events a request leaves behind, through the real HTTP app and the SQL store (SQLite).

Every event names its source IP and user agent; logins, policy decisions, approvals with their
approvers, activations and token mints (id and ServiceAccount uid, never the token) are recorded,
and the broker records the hashes of its config and policy at start.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey

from kubejit.audit.event import StoredEvent
from kubejit.clock import FixedClock
from kubejit.config import Settings
from kubejit.grants.origin import Origin, acting_from, current_origin
from kubejit.grants.ports import MintedToken
from kubejit.grants.service import GrantService
from kubejit.identity.dev_issuer import DevIssuer
from kubejit.ids import GrantId
from kubejit.policy.load import parse_policy
from kubejit.server.app import create_app
from kubejit.server.audit_records import record_start
from kubejit.server.deps import Services
from kubejit.server.schemas import ClusterOut
from kubejit.store import SqlAuditStore, SqlGrantStore, create_store_engine, upgrade
from tests.fakes import FakeCluster

pytestmark = pytest.mark.integration

POLICY = """
roles:
  view: {clusterRole: view}
  edit: {clusterRole: edit}
rules:
  - name: view-auto
    groups: [developers]
    clusters: [dev]
    namespaces: ["team-*"]
    roles: [view]
    duration: {default: 1h, max: 4h}
    approval: auto
  - name: edit-two
    groups: [developers]
    clusters: [dev]
    namespaces: ["team-*"]
    roles: [edit]
    duration: {default: 1h, max: 4h}
    approval: {approvers: 2, groups: [sre]}
"""


class TokenCluster(FakeCluster):
    """A fake of kubejit's own ClusterAdapter port whose tokens carry the ServiceAccount uid claim."""

    def mint_token(self, grant: object, *, expiration_seconds: int) -> MintedToken:
        minted = super().mint_token(grant, expiration_seconds=expiration_seconds)  # type: ignore[arg-type]
        self.minted = getattr(self, "minted", 0) + 1
        claims = {
            "jti": minted.token_id,
            "n": self.minted,
            "kubernetes.io": {"serviceaccount": {"uid": "sa-uid-1"}},
        }
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        return MintedToken(token=f"e30.{body}.c2ln", expires_at=minted.expires_at, token_id=minted.token_id)


@dataclass
class World:
    http: TestClient
    store: SqlGrantStore
    audit: SqlAuditStore
    issuer: DevIssuer

    def auth(self, user: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.issuer.issue(user)}", "user-agent": f"kubejit-test/{user}"}

    def events(self) -> list[StoredEvent]:
        return list(self.audit.iter_events())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = FixedClock()
    engine = create_store_engine(f"sqlite:///{tmp_path / 'kubejit.db'}")
    upgrade(engine)
    store = SqlGrantStore(engine, clock=clock)
    ids = (GrantId(f"g{i}") for i in itertools.count(1))
    service = GrantService(
        store=store,
        audit=SqlAuditStore(engine),
        clusters={"dev": TokenCluster()},
        policy=parse_policy(POLICY),
        clock=clock,
        id_factory=lambda: next(ids),
    )
    users = {"alice": frozenset({"developers"}), "bob": frozenset({"sre"}), "carol": frozenset({"sre"})}
    key = ECKey.generate_key("P-256", parameters={"kid": "k"}, private=True)
    issuer = DevIssuer(users=users, key=key, issuer="http://test/dev", clock=clock)
    services = Services(
        grants=service,
        authenticator=issuer,
        clusters=[ClusterOut(name="dev", audience="a")],
        dev_issuer=issuer,
    )
    with TestClient(create_app(services)) as http:
        yield World(http, store, SqlAuditStore(engine), issuer)
    engine.dispose()


def test_every_event_of_a_request_names_its_source_ip_and_user_agent(world: World) -> None:
    with TestClient(world.http.app, client=("127.0.0.1", 50000)) as local:  # dev login: loopback only
        login = local.post("/v1/dev/login", json={"user": "alice"}, headers={"user-agent": "cli/1"})
    assert login.status_code == 200
    body = {"cluster": "dev", "namespaces": ["team-a"], "role": "view", "reason": "INC-9"}
    assert world.http.post("/v1/grants", json=body, headers=world.auth("alice")).status_code == 201
    events = world.events()
    assert [e.action for e in events] == [
        "auth.login",
        "policy.decided",
        "grant.requested",
        "grant.activated",
    ]
    assert {(e.details["source_ip"], e.details["user_agent"]) for e in events[1:]} == {
        ("testclient", "kubejit-test/alice")
    }
    assert events[0].details["user_agent"] == "cli/1" and events[0].subject == "alice"
    decided = events[1]
    assert (decided.outcome, decided.details["rule"], decided.grant_id) == ("auto", "view-auto", "g1")
    assert current_origin() is None  # nothing leaks out of the request


def test_approvals_name_the_approvers_and_tokens_are_recorded_without_the_token(world: World) -> None:
    body = {"cluster": "dev", "namespaces": ["team-a"], "role": "edit", "reason": "deploy"}
    grant = world.http.post("/v1/grants", json=body, headers=world.auth("alice")).json()
    for approver in ("bob", "carol"):
        r = world.http.post(f"/v1/grants/{grant['id']}/approve", json={}, headers=world.auth(approver))
        assert r.status_code == 200, r.text
    tokens = [
        world.http.post(f"/v1/grants/{grant['id']}/token", headers=world.auth("alice")) for _ in range(2)
    ]
    assert all(t.status_code == 200 for t in tokens)
    by_action = {e.action: e for e in world.events()}
    assert by_action["grant.activated"].details["approvers"] == ["bob", "carol"]
    assert by_action["grant.approved"].details["source_ip"] == "testclient"
    minted, refreshed = by_action["token.minted"], by_action["token.refreshed"]
    assert minted.details["token_id"] == "jti-g1" and minted.details["service_account_uid"] == "sa-uid-1"
    assert refreshed.details["service_account_uid"] == "sa-uid-1"
    token = tokens[0].json()["token"]
    assert all(token not in json.dumps(e.to_dict()) for e in world.events())


def test_authentication_failures_name_their_origin(world: World) -> None:
    r = world.http.get("/v1/grants", headers={"authorization": "Bearer nope", "user-agent": "curl/8"})
    assert r.status_code == 401
    (failed,) = world.events()
    assert (failed.action, failed.details["user_agent"], failed.details["source_ip"]) == (
        "auth.failed",
        "curl/8",
        "testclient",
    )


def test_the_origin_is_clipped_and_scoped() -> None:
    with acting_from(Origin("10.0.0.1", "x" * 500)) as origin:
        assert current_origin() == origin and origin.user_agent == "x" * 200
    assert current_origin() is None


def test_config_and_policy_hashes_are_recorded_at_start_and_changes_flagged(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    settings = Settings.model_validate(
        {
            "clusters": [{"name": "dev", "kubeconfig": str(tmp_path / "kc"), "audience": "a"}],
            "policyFile": str(policy),
            "dataDir": str(tmp_path),
        }
    )
    engine = create_store_engine(f"sqlite:///{tmp_path / 'kubejit.db'}")
    upgrade(engine)
    store = SqlAuditStore(engine)
    clock = FixedClock()
    record_start(store, settings, clock=clock)
    record_start(store, settings, clock=clock)  # same files: nothing changed
    policy.write_text(POLICY + "\n# reviewed\n")
    record_start(store, settings, clock=clock)
    actions = [e.action for e in store.iter_events()]
    assert actions == [
        "config.changed",
        "policy.changed",
        "broker.started",
        "broker.started",
        "policy.changed",
        "broker.started",
    ]
    changed = [e for e in store.iter_events() if e.action == "policy.changed"][-1]
    first = next(e for e in store.iter_events() if e.action == "broker.started")
    assert changed.details["previous_sha256"] == first.details["policy_sha256"] != changed.details["sha256"]
    engine.dispose()
