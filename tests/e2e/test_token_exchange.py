"""CI/CD token exchange end to end: a job token shaped exactly like GitHub's → kubeconfig → real kubectl.

A local OIDC issuer (real HTTP on loopback, real RSA keys, discovery + JWKS) signs job tokens with
every claim GitHub Actions sets; the broker runs as a process with that issuer as a workload issuer;
`kubejit ci kubeconfig` (as a pipeline runs it, including the GitHub Actions token request) writes
the kubeconfig, and the real kubectl uses it against the real API server. Hostile tokens are each
refused with 401/403, audited, and create nothing in either cluster.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from lightkube import Client

from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.kubectl import KubectlResult, RedactedToken, kubectl_with_token, run_kubectl
from kubejit.testing.oidc_issuer import LocalIssuer
from tests.broker_identity import BrokerIdentity
from tests.broker_process import E2E_POLICY, KUBEJIT, Broker
from tests.e2e.conftest import owned_objects
from tests.polling import eventually

pytestmark = pytest.mark.e2e

AUDIENCE = "https://kubejit.e2e.example"
#: A 30 s grant's end + the API server's 10 s token review cache.
POLL_SECONDS = 90
REPOSITORY_ID, OWNER_ID = "690001234", "4200"
WORKLOADS = f"""
workloads:
  - name: deploy-app
    issuer: github
    github:
      repository_id: "{REPOSITORY_ID}"
      repository_owner_id: "{OWNER_ID}"
      ref: refs/heads/main
      event_name: [push, workflow_dispatch]
      job_workflow_ref: "acme/app/.github/workflows/deploy.yml@refs/heads/main"
    clusters: [kubejit-test-a]
    namespaces: ["e2e-*"]
    roles: [edit]
  - name: followup-open
    issuer: github
    github:
      repository_id: "{REPOSITORY_ID}"
      workflow: followup
    clusters: [kubejit-test-a]
    namespaces: ["e2e-*"]
    roles: [view]
  - name: followup-after-ci
    issuer: github
    github:
      repository_id: "{REPOSITORY_ID}"
      workflow: after-ci
      event_name: workflow_run
    clusters: [kubejit-test-a]
    namespaces: ["e2e-*"]
    roles: [view]
  - name: gitlab-read
    issuer: gitlab
    gitlab:
      project_id: "42"
      ref_protected: true
    clusters: [kubejit-test-a]
    namespaces: ["e2e-*"]
    roles: [view]
"""
EXCHANGE_FORM = {
    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
    "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
}


def github_claims(issuer: LocalIssuer, **overrides: Any) -> dict[str, Any]:
    """Every claim GitHub Actions puts in a job token, for a push to main of acme/app."""
    claims: dict[str, Any] = {
        "jti": secrets.token_hex(16),
        "sub": "repo:acme/app:ref:refs/heads/main",
        "aud": AUDIENCE,
        "ref": "refs/heads/main",
        "sha": "f" * 40,
        "repository": "acme/app",
        "repository_owner": "acme",
        "repository_owner_id": OWNER_ID,
        "run_id": "9876543210",
        "run_number": "42",
        "run_attempt": "1",
        "repository_visibility": "private",
        "repository_id": REPOSITORY_ID,
        "actor_id": "1234",
        "actor": "octocat",
        "workflow": "deploy",
        "head_ref": "",
        "base_ref": "",
        "event_name": "push",
        "ref_protected": "true",
        "ref_type": "branch",
        "workflow_ref": "acme/app/.github/workflows/deploy.yml@refs/heads/main",
        "workflow_sha": "f" * 40,
        "job_workflow_ref": "acme/app/.github/workflows/deploy.yml@refs/heads/main",
        "job_workflow_sha": "f" * 40,
        "runner_environment": "github-hosted",
        "enterprise": "acme-corp",
        "enterprise_id": "77",
    }
    claims.update(overrides)
    return claims


class WorkloadBroker(Broker):
    """The e2e broker with local issuers as its `github` and `gitlab` workload issuers, and audit reads."""

    def audit(self, action: str) -> list[dict[str, Any]]:
        with sqlite3.connect(f"file:{self.workdir / 'kubejit.db'}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT actor, outcome, details FROM audit_events WHERE action = ? ORDER BY seq", (action,)
            ).fetchall()
        return [{"actor": a, "outcome": o, **json.loads(d)} for a, o, d in rows]

    def grant_count(self) -> int:
        with sqlite3.connect(f"file:{self.workdir / 'kubejit.db'}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM grants").fetchone()[0])


@pytest.fixture(scope="module")
def github_issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer() as issuer:
        yield issuer


@pytest.fixture(scope="module")
def gitlab_issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer(kty="EC") as issuer:
        yield issuer


@pytest.fixture(scope="module")
def workload_broker(
    tmp_path_factory: pytest.TempPathFactory,
    github_issuer: LocalIssuer,
    gitlab_issuer: LocalIssuer,
    broker_identity: BrokerIdentity,
    second_broker_identity: BrokerIdentity,
) -> Iterator[WorkloadBroker]:
    running = WorkloadBroker(
        tmp_path_factory.mktemp("workload-broker"),
        [broker_identity, second_broker_identity],
        policy=E2E_POLICY + WORKLOADS,
        extra_config={
            "workloadIssuers": [
                {"name": "github", "kind": "github", "issuerUrl": github_issuer.url, "audience": AUDIENCE},
                {"name": "gitlab", "kind": "gitlab", "issuerUrl": gitlab_issuer.url, "audience": AUDIENCE},
            ]
        },
    )
    running.start()
    yield running
    running.stop()


class ActionsTokenService:
    """Stands in for the GitHub Actions runtime's ACTIONS_ID_TOKEN_REQUEST_URL: a job token per request."""

    def __init__(self, issuer: LocalIssuer, claims: Callable[[], dict[str, Any]]) -> None:
        self.request_token = secrets.token_hex(16)
        self.audiences: list[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("authorization") != f"bearer {service.request_token}":
                    self.send_error(401)
                    return
                audience = parse_qs(urlsplit(self.path).query).get("audience", [""])[0]
                service.audiences.append(audience)
                body = json.dumps({"value": issuer.issue({**claims(), "aud": audience})}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token?api-version=2.0"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ActionsTokenService:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.thread.join()
        self.server.server_close()


def ci_kubeconfig(
    broker: Broker, out: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBEJIT, "ci", "kubeconfig", "--broker", broker.url, "--out", str(out), *args],
        env={**broker.env_for(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def kubectl(kubeconfig: Path, *args: str) -> KubectlResult:
    return run_kubectl([f"--kubeconfig={kubeconfig}", *args])


def test_a_github_job_token_becomes_a_kubeconfig_that_works_only_in_its_namespace_until_the_grant_ends(
    workload_broker: WorkloadBroker,
    github_issuer: LocalIssuer,
    control_plane: ControlPlane,
    second_control_plane: ControlPlane,
    namespaces: Callable[..., list[str]],
    admin_client: Client,
    tmp_path: Path,
) -> None:
    granted, other = namespaces(control_plane, 2)
    # 1. As in a GitHub Actions job: the CLI asks the runtime for the job token (audience = the broker's).
    short = tmp_path / "short" / "kubeconfig"
    with ActionsTokenService(github_issuer, lambda: github_claims(github_issuer)) as actions:
        env = {
            "ACTIONS_ID_TOKEN_REQUEST_URL": actions.url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": actions.request_token,
        }
        done = ci_kubeconfig(
            workload_broker, short, "--github", "--audience", AUDIENCE, "-c", control_plane.name,
            "-n", granted, "-r", "edit", "--for", "30s", "-o", "json", env=env,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert actions.audiences == [AUDIENCE]
    short_grant = json.loads(done.stdout)["data"]
    assert short_grant["principal"] == "github:repo:acme/app:ref:refs/heads/main"
    assert short.stat().st_mode & 0o777 == 0o600
    config = yaml.safe_load(short.read_text())
    token = config["users"][0]["user"]["token"]
    assert token not in done.stdout + done.stderr  # never echoed
    assert config["contexts"][0]["context"]["namespace"] == granted

    # 2. A second job, token from a file, default duration; this grant will be revoked.
    token_file = tmp_path / "job-token"
    token_file.write_text(github_issuer.issue(github_claims(github_issuer)))
    long = tmp_path / "long" / "kubeconfig"
    done = ci_kubeconfig(workload_broker, long, "--token-file", str(token_file), "-n", granted, "-o", "json")
    assert done.returncode == 0, done.stderr + done.stdout
    long_grant = json.loads(done.stdout)["data"]
    assert 15 * 60 - 30 < long_grant["expires_in"] <= 15 * 60 and long_grant["role"] == "edit"

    for kubeconfig in (short, long):
        assert kubectl(kubeconfig, "get", "pods").ok  # the preset namespace
        assert kubectl(kubeconfig, "create", "configmap", f"cm-{secrets.token_hex(3)}").ok  # edit
        assert kubectl(kubeconfig, "get", "pods", "-n", other).forbidden
        assert kubectl(kubeconfig, "get", "pods", "-n", "kube-system").forbidden
        assert kubectl(kubeconfig, "get", "nodes").forbidden
        token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
        elsewhere = kubectl_with_token(
            ["get", "pods", "-n", granted],
            server=second_control_plane.server,
            ca_path=second_control_plane.ca_path,
            token=RedactedToken(token),
        )
        assert elsewhere.unauthorized  # a token of one cluster means nothing to another
    assert len(owned_objects(admin_client, short_grant["grant_id"])) == 2
    requested = workload_broker.audit("grant.requested")
    assert {r["claims"]["repository"] for r in requested} == {"acme/app"}

    # 3. One grant expires by itself, the other is revoked: both kubeconfigs stop working.
    workload_broker.login("root")
    workload_broker.cli("root", "revoke", long_grant["grant_id"], "--reason", "pipeline done")
    eventually(
        lambda: kubectl(long, "get", "pods").unauthorized,
        what="revoked job's token rejected",
        within=POLL_SECONDS,
    )
    eventually(
        lambda: kubectl(short, "get", "pods").unauthorized,
        what="expired job's token rejected",
        within=POLL_SECONDS,
    )
    assert owned_objects(admin_client, short_grant["grant_id"]) == []
    assert owned_objects(admin_client, long_grant["grant_id"]) == []


HOSTILE: dict[str, tuple[dict[str, Any], int, str | None]] = {
    "a workflow from a repository policy does not name": (
        {"repository": "evil/app", "repository_id": "666", "sub": "repo:evil/app:ref:refs/heads/main"},
        403,
        "default-deny",
    ),
    "a workflow from a branch policy does not name": (
        {"ref": "refs/heads/feature", "sub": "repo:acme/app:ref:refs/heads/feature"},
        403,
        "default-deny",
    ),
    "a fork's pull request": (
        {
            "event_name": "pull_request",
            "ref": "refs/pull/12/merge",
            "head_ref": "patch-1",
            "base_ref": "main",
            "sub": "repo:acme/app:pull_request",
            "ref_protected": "false",
        },
        403,
        "pull-request-refused",
    ),
    # Base-context events a pull request can trigger: refused by a rule that does not pin event_name.
    "a workflow_run after a pull request's CI": (
        {"event_name": "workflow_run", "workflow": "followup"},
        403,
        "event-refused",
    ),
    "an issue_comment workflow": (
        {"event_name": "issue_comment", "workflow": "followup"},
        403,
        "event-refused",
    ),
    "a wrong audience": ({"aud": "https://another-service.example"}, 401, None),
    "an audience list naming this broker and another": (
        {"aud": [AUDIENCE, "https://other.example"]},
        401,
        None,
    ),
}


def test_hostile_job_tokens_are_refused_audited_and_create_nothing(
    workload_broker: WorkloadBroker,
    github_issuer: LocalIssuer,
    control_plane: ControlPlane,
    namespaces: Callable[..., list[str]],
    admin_client_for: Callable[[ControlPlane], Client],
    second_control_plane: ControlPlane,
    tmp_path: Path,
) -> None:
    (granted,) = namespaces(control_plane, 1)
    url = f"{workload_broker.url}/v1/token-exchange"

    def exchange(token: str) -> httpx.Response:
        form = {**EXCHANGE_FORM, "subject_token": token, "scope": f"namespace:{granted}"}
        return httpx.post(url, data=form, timeout=60)

    # A replayed jti: the first use is fine, the second is refused.
    replayed = github_issuer.issue(github_claims(github_issuer))
    assert exchange(replayed).status_code == 200
    before = (
        workload_broker.grant_count(),
        *(owned_objects(admin_client_for(p)) for p in (control_plane, second_control_plane)),
    )
    refused_before = len(workload_broker.audit("token_exchange.refused"))
    denied_before = len(workload_broker.audit("grant.request_denied"))

    answer = exchange(replayed)
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_grant", answer.text
    assert "replay" in answer.json()["detail"]
    for case, (claims, status, rule) in HOSTILE.items():
        answer = exchange(github_issuer.issue(github_claims(github_issuer, **claims)))
        assert answer.status_code == status, f"{case}: {answer.text}"
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["error"] == ("invalid_target" if status == 403 else "invalid_grant"), case
        assert answer.json().get("rule") == rule, case

    # Every refusal is audited: 401s as token_exchange.refused, policy refusals with the job's claims.
    refused = workload_broker.audit("token_exchange.refused")[refused_before:]
    assert len(refused) == 3 and all(r["outcome"] == "failure" for r in refused)
    assert "replay" in refused[0]["error"] and "aud" in refused[1]["error"]
    denied = workload_broker.audit("grant.request_denied")[denied_before:]
    assert [d["rule"] for d in denied] == [
        *("default-deny", "default-deny", "pull-request-refused", "event-refused", "event-refused")
    ]
    assert [d["claims"]["event_name"] for d in denied[3:]] == ["workflow_run", "issue_comment"]
    assert all("followup-open" in d["near_miss"] and "pins event_name" in d["message"] for d in denied[3:])
    assert denied[0]["claims"]["repository"] == "evil/app"
    assert denied[2]["claims"]["event_name"] == "pull_request"
    after = (
        workload_broker.grant_count(),
        *(owned_objects(admin_client_for(p)) for p in (control_plane, second_control_plane)),
    )
    assert after == before  # nothing created anywhere

    # The CLI shows the refusal without a traceback or the token, and fails.
    token_file = tmp_path / "fork-token"
    token_file.write_text(
        github_issuer.issue(github_claims(github_issuer, **HOSTILE["a fork's pull request"][0]))
    )
    done = ci_kubeconfig(workload_broker, tmp_path / "kc", "--token-file", str(token_file), "-n", granted)
    assert done.returncode == 3 and "fork" in done.stderr and "Traceback" not in done.stderr
    assert token_file.read_text() not in done.stderr + done.stdout
    assert not (tmp_path / "kc").exists()

    # A rule that pins event_name: workflow_run allows exactly that (and refuses issue_comment).
    after_ci = {"event_name": "workflow_run", "workflow": "after-ci"}
    answer = exchange(github_issuer.issue(github_claims(github_issuer, **after_ci)))
    assert answer.status_code == 200, answer.text
    commented = {"event_name": "issue_comment", "workflow": "after-ci"}
    answer = exchange(github_issuer.issue(github_claims(github_issuer, **commented)))
    assert answer.status_code == 403 and answer.json()["rule"] == "default-deny", answer.text


ACTION = Path(__file__).parents[2] / "action.yml"


def run_action(inputs: dict[str, str], env: dict[str, str], workdir: Path) -> tuple[int, str, dict[str, str]]:
    """Run the composite action's steps as the GitHub runner does (bash -eo pipefail, env files)."""
    action = yaml.safe_load(ACTION.read_text())
    values = {name: spec.get("default", "") for name, spec in action["inputs"].items()} | inputs
    files = {"GITHUB_ENV": workdir / "github_env", "GITHUB_OUTPUT": workdir / "github_output"}
    for file in files.values():
        file.touch()
    base = {**env, "RUNNER_TEMP": str(workdir), **{k: str(v) for k, v in files.items()}}
    output = ""
    for step in action["runs"]["steps"]:
        if "if" in step and not values["kubejit-package"]:
            continue  # the install step: the CLI under test is already on PATH
        step_env = {
            k: re.sub(r"\$\{\{ inputs\.([-a-z]+) \}\}", lambda m: values[m[1]], v)
            for k, v in step.get("env", {}).items()
        }
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            env={**base, **step_env}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        output += done.stdout + done.stderr
        if done.returncode != 0:
            return done.returncode, output, {}
    exported = dict(line.split("=", 1) for line in files["GITHUB_ENV"].read_text().splitlines())
    exported |= dict(line.split("=", 1) for line in files["GITHUB_OUTPUT"].read_text().splitlines())
    return 0, output, exported


def test_the_composite_action_exports_a_working_kubeconfig(
    workload_broker: WorkloadBroker,
    github_issuer: LocalIssuer,
    control_plane: ControlPlane,
    namespaces: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    (granted,) = namespaces(control_plane, 1)
    inputs = {
        "broker-url": workload_broker.url,
        "audience": AUDIENCE,
        "namespace": granted,
        "kubejit-package": "",
    }
    env = {k: v for k, v in workload_broker.env_for().items() if not k.startswith("KUBEJIT_")}
    env["PATH"] = f"{Path(KUBEJIT).parent}:{env['PATH']}"  # what the skipped install step provides
    status, output, _ = run_action(inputs, env, tmp_path)
    assert status == 1 and "id-token: write" in output  # no OIDC permission: refused up front

    with ActionsTokenService(github_issuer, lambda: github_claims(github_issuer)) as actions:
        env |= {
            "ACTIONS_ID_TOKEN_REQUEST_URL": actions.url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": actions.request_token,
        }
        status, output, exported = run_action(inputs, env, tmp_path)
    assert status == 0, output
    kubeconfig = Path(exported["KUBECONFIG"])
    assert exported["kubeconfig"] == str(kubeconfig) and exported["grant-id"].startswith("g")
    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    assert [line for line in output.splitlines() if token in line] == [f"::add-mask::{token}"]
    assert f"edit in {granted} on {control_plane.name}" in output
    assert kubectl(kubeconfig, "auth", "can-i", "create", "deployments").ok
    assert kubectl(kubeconfig, "get", "pods", "-n", "default").forbidden


def test_a_gitlab_job_token_from_an_environment_variable_gets_its_own_rule(
    workload_broker: WorkloadBroker,
    gitlab_issuer: LocalIssuer,
    github_issuer: LocalIssuer,
    control_plane: ControlPlane,
    namespaces: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    (granted,) = namespaces(control_plane, 1)
    claims = {
        "aud": AUDIENCE,
        "jti": secrets.token_hex(16),
        "sub": "project_path:acme/reports:ref_type:branch:ref:main",
        "namespace_id": "7",
        "namespace_path": "acme",
        "project_id": "42",
        "project_path": "acme/reports",
        "user_id": "3",
        "user_login": "gitlab-user",
        "pipeline_id": "1001",
        "pipeline_source": "push",
        "job_id": "5005",
        "ref": "main",
        "ref_type": "branch",
        "ref_path": "refs/heads/main",
        "ref_protected": "true",
        "runner_id": 9,
        "runner_environment": "gitlab-hosted",
        "sha": "e" * 40,
        "project_visibility": "private",
        "ci_config_ref_uri": "gitlab.com/acme/reports//.gitlab-ci.yml@refs/heads/main",
        "ci_config_sha": "e" * 40,
    }
    out = tmp_path / "kubeconfig"
    env = {"KUBEJIT_ID_TOKEN": gitlab_issuer.issue(claims)}
    done = ci_kubeconfig(
        workload_broker, out, "--token-env", "KUBEJIT_ID_TOKEN", "-n", granted, "-o", "json", env=env
    )
    assert done.returncode == 0, done.stderr + done.stdout
    grant = json.loads(done.stdout)["data"]
    assert grant["principal"] == "gitlab:project_path:acme/reports:ref_type:branch:ref:main"
    assert grant["role"] == "view"
    assert kubectl(out, "get", "pods").ok
    assert kubectl(out, "create", "configmap", "nope").forbidden  # view, not edit

    # The same claims signed by the GitHub issuer are no GitLab job: issuers never stand in for each other.
    forged = github_issuer.issue({**claims, "jti": secrets.token_hex(16)})
    done = ci_kubeconfig(
        workload_broker, tmp_path / "kc2", "--token-env", "T", "-n", granted, env={"T": forged}
    )
    assert done.returncode == 3, done.stderr
