"""JSON, SARIF 2.1.0 and HTML renderings of a scan: complete, stable, and safe with hostile names."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from kubejit.clusters.scan.findings import RULES, ScanReport, scan
from kubejit.clusters.scan.html import html_report
from kubejit.clusters.scan.rbac import RbacIndex, ResourceRequest, matrix, who_can
from kubejit.clusters.scan.report import matrix_data, report_data, sarif, who_can_data
from kubejit.clusters.scan.resources import parse_resource
from tests.unit.scan.objects import crb, group, rb, snapshot, user

NOW = datetime(2026, 6, 1, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script>'


def report() -> ScanReport:
    snap = snapshot(
        bindings=[
            crb("alice-admin", "cluster-admin", user("alice")),
            rb("team-a", HOSTILE, "view", group(HOSTILE)),
        ]
    )
    return scan(snap, now=NOW)


def test_json_document() -> None:
    data = report_data(report())
    json.dumps(data)  # serialisable as it is
    assert data["summary"] == {"high": 1, "medium": 1, "low": 1}
    first = data["findings"][0]
    assert first["rule"] == "cluster-admin" and first["severity"] == "high"
    assert first["object"]["path"] == "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/alice-admin"
    assert first["subjects"] == [{"kind": "User", "name": "alice", "namespace": None}]


def test_sarif_log() -> None:
    log = sarif(report())
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(RULES)
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in {"error", "warning", "note"}
        (location,) = result["locations"]
        assert location["physicalLocation"]["artifactLocation"]["uriBaseId"] in run["originalUriBaseIds"]
        assert location["logicalLocations"][0]["fullyQualifiedName"].startswith("/api")
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels["cluster-admin"] == "error" and levels["group-binding"] == "note"
    # the same finding keeps its fingerprint from one scan to the next
    again = sarif(report())["runs"][0]["results"]
    assert [r["partialFingerprints"] for r in again] == [r["partialFingerprints"] for r in run["results"]]


def test_html_is_self_contained_and_escapes_cluster_values() -> None:
    page = html_report(report())
    assert page.startswith("<!DOCTYPE html>")
    assert HOSTILE not in page and "&lt;script&gt;" in page
    assert not re.search(r"""(src|href)\s*=|@import|url\(|<script|<link""", page, re.I)
    assert "Bound to cluster-admin" in page and "<style>" in page


def test_html_for_a_clean_cluster() -> None:
    assert "No standing privilege found" in html_report(scan(snapshot(), now=NOW))


def test_who_can_and_matrix_documents() -> None:
    index = RbacIndex(snapshot(bindings=[rb("team-a", "v", "view", group("devs"))]))
    request = ResourceRequest("get", parse_resource("pods"), "team-a")
    found = who_can(index, request)
    data = who_can_data("c", request, found)
    assert data["access"][0]["subject"]["name"] == "devs" and data["access"][0]["default"] is False
    table = matrix_data("c", matrix(index, "team-a", resources=[parse_resource("pods")]))
    assert table["subjects"] == [
        {
            "subject": {"kind": "Group", "name": "devs", "namespace": None},
            "access": {"pods": ["get", "list", "watch"]},
        }
    ]
