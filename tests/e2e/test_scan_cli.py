"""`kubejit scan` and `who-can` as a CI job runs them: a process per command against a real cluster.

The cluster is this module's own (the shared ones hold other tests' objects, so their findings are not
predictable): fresh, it passes `--fail-on low`; each object a test seeds turns into the exit code CI
gates on, and is deleted afterwards. SARIF is checked against what the 2.1.0 specification requires
and what code-scanning dashboards read; the HTML report must load nothing and run nothing. Bad input is
one `Error:` line and a hint, with the error's exit code.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, codecs

from kubejit.errors import ClusterError, ConfigError, InvalidInput
from kubejit.testing import clients
from kubejit.testing.controlplane import ControlPlane, ControlPlaneBinaries
from tests.broker_identity import set_up_broker
from tests.unit.scan.objects import crb, group, rb, user

pytestmark = pytest.mark.e2e

KUBEJIT = Path(sys.executable).parent / "kubejit"
FINDINGS_EXIT = 20
RBAC_V1 = "rbac.authorization.k8s.io/v1"
XSS = "<script>alert('pwned')</script>"


def kubejit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KUBEJIT), *args], capture_output=True, text=True, check=False)


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str, exit_code: int) -> None:
    assert "Traceback" not in result.stderr + result.stdout
    assert result.returncode == exit_code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("Error: ") and fragment in lines[0], result.stderr
    assert all(line.startswith("Hint: ") for line in lines[1:]), result.stderr


@pytest.fixture(scope="module")
def plane(
    control_plane_binaries: ControlPlaneBinaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    with ControlPlane(
        tmp_path_factory.mktemp("scan-e2e"), name="scan-e2e", binaries=control_plane_binaries
    ) as running:
        yield running


@pytest.fixture
def seed(plane: ControlPlane) -> Iterator[Callable[[str, dict[str, Any]], None]]:
    """``seed(kind, obj)`` creates an RBAC object (or a Secret) and deletes it when the test ends."""
    admin = clients.admin_client(plane)
    made: list[Any] = []

    def create(kind: str, obj: dict[str, Any]) -> None:
        version = "v1" if kind == "Secret" else RBAC_V1
        made.append(admin.create(codecs.from_dict({"apiVersion": version, "kind": kind, **obj})))

    yield create
    for obj in reversed(made):
        try:
            admin.delete(type(obj), obj.metadata.name, namespace=obj.metadata.namespace)
        except ApiError as e:
            if e.status.code != 404:
                raise
    admin.close()


def scan(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    return kubejit("scan", "--kubeconfig", str(plane.kubeconfig_path), *args)


def test_fail_on_turns_findings_into_the_exit_code_ci_gates_on(
    plane: ControlPlane, seed: Callable[[str, dict[str, Any]], None]
) -> None:
    fresh = scan(plane, "--fail-on", "low")
    assert fresh.returncode == 0, fresh.stderr
    assert "No standing privilege found beyond Kubernetes' defaults" in fresh.stdout
    seed("RoleBinding", rb("default", "devs-view", "view", group("devs")))  # group-binding: low
    assert scan(plane, "--fail-on", "medium").returncode == 0
    low = scan(plane, "--fail-on", "low")
    assert low.returncode == FINDINGS_EXIT and "1 finding(s) at or above low" in low.stderr
    assert "devs-view" in low.stdout and "group-binding" in low.stdout  # a table (80 columns: folded)
    seed("ClusterRoleBinding", crb("alice-admin", "cluster-admin", user("alice")))  # high + medium
    for threshold, failing in (("high", 1), ("medium", 2), ("low", 3)):
        result = scan(plane, "--fail-on", threshold)
        assert result.returncode == FINDINGS_EXIT, result.stderr
        assert f"{failing} finding(s) at or above {threshold}" in result.stderr
    assert scan(plane).returncode == 0  # without --fail-on, findings are a report, not a failure
    as_json = scan(plane, "-o", "json", "--fail-on", "high")
    assert as_json.returncode == FINDINGS_EXIT
    assert json.loads(as_json.stdout)["data"]["summary"] == {"high": 1, "medium": 1, "low": 1}


def sarif_problems(log: dict[str, Any]) -> list[str]:
    """What SARIF 2.1.0 (OASIS, sections 3.13-3.27) and GitHub code scanning require, as found wrong."""
    problems: list[str] = []

    def need(condition: bool, what: str) -> None:
        if not condition:
            problems.append(what)

    need(log.get("version") == "2.1.0", "version must be 2.1.0")
    need(str(log.get("$schema", "")).endswith("sarif-2.1.0.json"), "$schema must name the 2.1.0 schema")
    runs = log.get("runs")
    need(isinstance(runs, list) and len(runs) == 1, "one run")
    for run in runs or []:
        driver = run.get("tool", {}).get("driver", {})
        need(isinstance(driver.get("name"), str) and driver["name"], "tool.driver.name")
        rules = driver.get("rules", [])
        ids = [r.get("id") for r in rules]
        need(len(ids) == len(set(ids)), "rule ids unique")
        for r in rules:
            need(bool(r.get("shortDescription", {}).get("text")), f"rule {r.get('id')}: shortDescription")
            level = r.get("defaultConfiguration", {}).get("level")
            need(level in ("none", "note", "warning", "error"), f"rule {r.get('id')}: level")
            severity = r.get("properties", {}).get("security-severity", "")
            need(re.fullmatch(r"\d+(\.\d+)?", severity) is not None, f"rule {r.get('id')}: severity")
        bases = run.get("originalUriBaseIds", {})
        fingerprints = set()
        for i, result in enumerate(run.get("results", [])):
            where = f"result {i}"
            need(bool(result.get("message", {}).get("text")), f"{where}: message.text")
            need(result.get("level") in ("none", "note", "warning", "error"), f"{where}: level")
            index = result.get("ruleIndex")
            need(
                isinstance(index, int) and 0 <= index < len(rules) and ids[index] == result.get("ruleId"),
                f"{where}: ruleIndex points at ruleId",
            )
            for location in result.get("locations", []):
                artifact = location.get("physicalLocation", {}).get("artifactLocation", {})
                need(artifact.get("uriBaseId") in bases, f"{where}: uriBaseId is declared")
                need(not str(artifact.get("uri", "/")).startswith("/"), f"{where}: uri is relative")
            need(bool(result.get("locations")), f"{where}: a location (code scanning needs one)")
            print_ = json.dumps(result.get("partialFingerprints"), sort_keys=True)
            need(print_ not in fingerprints, f"{where}: partialFingerprints unique")
            fingerprints.add(print_)
    return problems


def test_sarif_is_valid_and_carries_every_finding(
    plane: ControlPlane, seed: Callable[[str, dict[str, Any]], None], tmp_path: Path
) -> None:
    seed("ClusterRoleBinding", crb("ops-admin", "cluster-admin", group("ops")))
    seed("RoleBinding", rb("default", "carol-edit", "edit", user("carol")))
    out = tmp_path / "scan.sarif"
    written = scan(plane, "-o", "sarif", "--out", str(out))
    assert written.returncode == 0, written.stderr
    assert f"Report written to {out}" in written.stderr and written.stdout == ""
    log = json.loads(out.read_text(encoding="utf-8"))
    assert sarif_problems(log) == []
    results = log["runs"][0]["results"]
    by_object = {(r["ruleId"], r["locations"][0]["logicalLocations"][0]["name"]): r for r in results}
    assert by_object["cluster-admin", "ops-admin"]["level"] == "error"
    assert by_object["group-binding", "ops-admin"]["level"] == "warning"
    assert by_object["user-binding", "carol-edit"]["level"] == "note"
    printed = json.loads(scan(plane, "-o", "sarif").stdout)  # the same log on stdout
    assert [r["ruleId"] for r in printed["runs"][0]["results"]] == [r["ruleId"] for r in results]
    assert sarif_problems({"version": "2.0.0", "runs": [{"results": [{"level": "fatal"}]}]})


class _Page(HTMLParser):
    """Every tag and attribute of a page; what it would fetch or run."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.fetches: list[str] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "poster", "data") or name.startswith("on"):
                self.fetches.append(f"{tag} {name}={value}")

    def handle_data(self, data: str) -> None:
        self.text += data


def test_html_is_self_contained_and_shows_names_as_text(
    plane: ControlPlane, seed: Callable[[str, dict[str, Any]], None], tmp_path: Path
) -> None:
    seed("ClusterRoleBinding", crb("xss-admin", "cluster-admin", user(XSS)))
    out = tmp_path / "scan.html"
    assert scan(plane, "-o", "html", "--out", str(out)).returncode == 0
    html = out.read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    page.close()
    assert page.tags[0] == "html" and "style" in page.tags
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert page.fetches == []
    assert not re.search(r"@import|url\s*\(|https?://", html)
    assert XSS in page.text  # the user's name is shown as it is, as text
    assert "Bound to cluster-admin" in page.text and "xss-admin" in page.text


def test_the_broker_rbac_is_not_reported_but_the_broker_cannot_scan(
    plane: ControlPlane, tmp_path: Path
) -> None:
    broker = set_up_broker(plane, tmp_path)
    assert scan(plane, "--fail-on", "low").returncode == 0
    forbidden = kubejit("scan", "--kubeconfig", str(broker.kubeconfig_path))
    assert_one_line_error(forbidden, f"context '{plane.name}' may not list", ClusterError.exit_code)
    assert "docs/scan.md" in forbidden.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bad_input_is_one_clear_line(plane: ControlPlane, tmp_path: Path) -> None:
    kubeconfig = str(plane.kubeconfig_path)
    (tmp_path / "garbage").write_bytes(b"\x00\xff not: [a kubeconfig")
    (tmp_path / "list.yaml").write_text("- just\n- a list\n")
    unreachable = yaml.safe_load(plane.kubeconfig_path.read_text())
    unreachable["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{_closed_port()}"
    (tmp_path / "unreachable").write_text(yaml.safe_dump(unreachable))
    config, usage, cluster = ConfigError.exit_code, InvalidInput.exit_code, ClusterError.exit_code
    cases = [
        (
            ("scan", "--kubeconfig", kubeconfig, "--context", "no-such-context"),
            "context 'no-such-context'",
            config,
        ),
        (("scan", "--kubeconfig", str(tmp_path / "missing")), "not found", config),
        (("scan", "--kubeconfig", str(tmp_path)), "cannot read kubeconfig", config),
        (("scan", "--kubeconfig", str(tmp_path / "garbage")), "not valid YAML", config),
        (("scan", "--kubeconfig", str(tmp_path / "list.yaml")), "is not a kubeconfig", config),
        (("scan", "--kubeconfig", str(tmp_path / "unreachable")), "cannot reach cluster", cluster),
        (("scan", "--kubeconfig", kubeconfig, "--fail-on", "critical"), "--fail-on must be one of", usage),
        (("scan", "--kubeconfig", kubeconfig, "-o", "xml"), "--output must be one of", usage),
        (("scan", "--kubeconfig", kubeconfig, "--out", str(tmp_path / "x")), "--out needs", usage),
        (("scan", "--kubeconfig", kubeconfig, "--suggest-policy", "-o", "json"), "takes no --output", usage),
        (("scan", "--kubeconfig", kubeconfig, "-o", "json", "--out", str(tmp_path)), "cannot write", usage),
        (("who-can", "get", "widgets", "--kubeconfig", kubeconfig), "unknown resource 'widgets'", usage),
        (("who-can", "get", "secret", "-n", "default", "--kubeconfig", kubeconfig), "", 0),
        (("who-can", "get", "pods/", "--kubeconfig", kubeconfig), "unknown resource 'pods/'", usage),
        (("who-can", "get", "pods/Exec!", "--kubeconfig", kubeconfig), "unknown resource", usage),
        (("who-can", "get", "deploy.nosuchgroup", "--kubeconfig", kubeconfig), "unknown resource", usage),
        (("who-can", "get", "secrts", "--kubeconfig", kubeconfig), "did you mean 'secrets'", usage),
        (("who-can", "get", "--kubeconfig", kubeconfig), "needs a VERB and a RESOURCE", usage),
        (("who-can", "--matrix", "get", "pods", "--kubeconfig", kubeconfig), "takes no VERB", usage),
        (
            ("who-can", "--kubeconfig", kubeconfig, "--context", "nope", "get", "pods"),
            "context 'nope'",
            config,
        ),
    ]
    for args, fragment, code in cases:
        result = kubejit(*args)
        if code == 0:
            assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        else:
            assert_one_line_error(result, fragment, code)
