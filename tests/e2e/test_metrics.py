"""/metrics on a real broker with real clusters: each metric an operator alerts on exists and moves
when the broker does the thing it counts, and no label carries a grant id, a user or a raw path."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from lightkube import Client
from lightkube.resources.core_v1 import ServiceAccount
from prometheus_client.parser import text_string_to_metric_families

from kubejit.clusters.objects import object_name
from kubejit.ids import GrantId
from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.processes import free_port
from tests.broker_identity import BrokerIdentity
from tests.broker_process import Broker
from tests.e2e.conftest import owned_objects
from tests.polling import eventually, poll

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def broker(tmp_path: Path, broker_identity: BrokerIdentity) -> Iterator[Broker]:
    plane = broker_identity.plane
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{free_port()}'}}}}]\n"
        "users: [{name: u, user: {token: none}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    clusters = [
        {"name": plane.name, "kubeconfig": str(broker_identity.kubeconfig_path), "audience": plane.audience},
        {"name": "gone", "kubeconfig": str(dead), "audience": "https://gone"},
    ]
    extra = {
        "clusters": clusters,
        "broker": {"rateLimits": {"authFailuresPerSourcePerMinute": 2}},
        "audit": {
            "deliveryIntervalSeconds": 0.2,
            "sinks": [{"name": "jsonl", "type": "file", "path": str(tmp_path / "audit.jsonl")}],
        },
    }
    running = Broker(tmp_path / "broker", [broker_identity], extra_config=extra)
    running.workdir.mkdir()
    running.start()
    yield running
    running.stop()


def scrape(broker: Broker) -> Samples:
    text = httpx.get(f"{broker.url}/metrics", timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_every_alerting_metric_moves_with_real_operations(
    broker: Broker,
    control_plane: ControlPlane,
    namespaces: Callable[..., list[str]],
    admin_client: Client,
) -> None:
    before = scrape(broker)
    (ns,) = namespaces(control_plane, 1)
    broker.login("alice")
    base = ("request", "-c", control_plane.name, "-n", ns, "-r", "edit")
    short = broker.json("alice", *base, "--for", "3s", "--reason", "metrics")
    kept = broker.json("alice", *base, "--reason", "metrics")
    broker.grant_token("alice", kept["id"])
    # The reconciler restores a ServiceAccount deleted behind its back.
    admin_client.delete(ServiceAccount, object_name(GrantId(kept["id"])), namespace="kubejit-grants")
    eventually(lambda: len(owned_objects(admin_client, kept["id"])) == 2, what="account restored")
    eventually(lambda: owned_objects(admin_client, short["id"]) == [], what="expired objects gone")
    broker.json("alice", "revoke", kept["id"], "--reason", "done")
    for _ in range(3):  # the third failure within the minute is refused with 429
        httpx.get(f"{broker.url}/v1/whoami", headers={"authorization": "Bearer nope"}, timeout=10)
    httpx.get(f"{broker.url}/no/such/path/{kept['id']}", timeout=10)

    after = poll(lambda: scrape(broker), lambda s: value(s, "kubejit_grant_transitions_total",
                 transition="expired") > value(before, "kubejit_grant_transitions_total",
                 transition="expired"), within=30)  # fmt: skip

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    for transition in ("requested", "activated", "expired", "revoked"):
        assert moved("kubejit_grant_transitions_total", transition=transition) >= 1, transition
    assert moved("kubejit_tokens_issued_total", kind="minted") == 1
    assert moved("kubejit_reconciler_repairs_total", repair="restored") >= 1
    assert moved("kubejit_expiry_cleanup_seconds_count") == 1
    assert 0 <= value(after, "kubejit_expiry_cleanup_seconds_sum") < 30
    assert moved("kubejit_rate_limit_refusals_total", limit="auth_failures") >= 1
    assert moved("kubejit_audit_events_total", action="grant.activated") == 2
    grants_route = {"route": "/v1/grants", "method": "POST", "status": "2xx"}
    assert moved("kubejit_http_request_duration_seconds_count", **grants_route) == 2
    assert moved("kubejit_http_request_duration_seconds_count", route="unmatched", method="GET", status="4xx")
    assert moved(
        "kubejit_http_request_duration_seconds_count", route="/v1/whoami", method="GET", status="4xx"
    )
    plane = control_plane.name
    assert moved("kubejit_cluster_request_duration_seconds_count", cluster=plane, verb="create", outcome="ok")
    assert moved("kubejit_cluster_errors_total", cluster="gone", kind="unavailable") >= 1
    assert value(after, "kubejit_cluster_reachable", cluster="gone") == 0
    assert value(after, "kubejit_grants", state="revoked") >= 1
    assert ("kubejit_audit_sink_lag_events", frozenset({("sink", "jsonl")})) in after

    text = httpx.get(f"{broker.url}/metrics", timeout=10).text
    labels = " ".join(re.findall(r"\{[^}]*\}", text))
    for secret in (kept["id"], short["id"], "alice", ns, "/no/such"):
        assert secret not in labels, f"{secret} is a label value"
