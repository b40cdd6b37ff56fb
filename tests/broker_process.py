"""The broker as a real process (`kubejit serve`) and the CLI as real processes, for e2e tests.

Each person gets their own HOME, so CLI sessions never mix. The broker can be killed with SIGKILL and
started again on the same config and database, to prove crash safety.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import yaml

from kubejit.testing.processes import free_port, log_tail
from tests.broker_identity import BrokerIdentity
from tests.polling import poll

KUBEJIT = str(Path(sys.executable).with_name("kubejit"))
KUBECTL = str(Path(sys.executable).with_name("kubectl"))

E2E_POLICY = """
roles:
  view: {clusterRole: view}
  edit: {clusterRole: edit}
  admin: {clusterRole: admin}
adminGroups: [platform-admins]
rules:
  - name: e2e-auto
    groups: [developers]
    clusters: ["*"]
    namespaces: ["e2e-*"]
    roles: [view, edit]
    duration: {default: 1h, max: 4h}
    approval: auto
  - name: e2e-two-approvers
    groups: [developers]
    clusters: ["*"]
    namespaces: ["e2e-*"]
    roles: [admin]
    duration: {default: 1h, max: 2h}
    approval: {approvers: 2, groups: [sre]}
    reason: required
"""
USERS = {"alice": ["developers"], "bob": ["sre"], "carol": ["sre"], "root": ["platform-admins"]}


@dataclass
class Broker:
    workdir: Path
    identities: list[BrokerIdentity]
    policy: str = E2E_POLICY
    sweep_interval: float = 0.2
    #: Top-level config sections a test adds (identity, workloadIssuers, audit, ...); a ``broker``
    #: section is merged into the harness's (host and port), e.g. to set ``rateLimits``.
    extra_config: dict[str, Any] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    #: Per cluster name, keys added to its config entry (e.g. credentialMode, audience).
    cluster_extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The CA of the broker's HTTPS certificate (``broker.tls`` in extra_config): clients trust it.
    tls_ca: Path | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_ca is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    def write_config(self) -> Path:
        (self.workdir / "policy.yaml").write_text(self.policy)
        config = {
            "broker": {"host": "127.0.0.1", "port": self.port, **self.extra_config.get("broker", {})},
            "store": {"url": f"sqlite:///{self.workdir / 'kubejit.db'}"},
            "dataDir": str(self.workdir / "data"),
            "clusters": [
                {
                    "name": i.plane.name,
                    "kubeconfig": str(i.kubeconfig_path),
                    "audience": i.plane.audience,
                    **self.cluster_extra.get(i.plane.name, {}),
                }
                for i in self.identities
            ],
            "policyFile": "policy.yaml",
            "devIssuer": {"enabled": True, "users": USERS},
            "workers": {"sweepIntervalSeconds": self.sweep_interval, "reconcileIntervalSeconds": 2},
            **{key: value for key, value in self.extra_config.items() if key != "broker"},
        }
        path = self.workdir / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self) -> Self:
        config = self.write_config()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [KUBEJIT, "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env_for(),
        )
        log.close()
        if not poll(self._healthy, bool, within=60, every=0.1):
            raise AssertionError(f"broker never became healthy: {log_tail(self.log_path)}")
        return self

    def _healthy(self) -> bool:
        """Whether /healthz answers 200; a broker that exited fails the start at once, with its log."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"broker exited: {log_tail(self.log_path, lines=30)}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1, verify=self.verify).status_code == 200
        except httpx.TransportError:
            return False

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """How a client in the test trusts the broker: its own CA when it serves HTTPS."""
        if self.tls_ca is None:
            return True
        return ssl.create_default_context(cafile=str(self.tls_ca))

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, as in a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def env_for(self, user: str | None = None) -> dict[str, str]:
        env = dict(os.environ)
        if user:
            home = self.workdir / "people" / user
            home.mkdir(parents=True, exist_ok=True)
            env.update(
                HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache")
            )
            env["KUBECONFIG"] = str(home / ".kube" / "config")
        env["KUBEJIT_BROKER"] = self.url
        if self.tls_ca is not None:  # urllib (the exec plugin) and httpx (the CLI) both read it
            env["SSL_CERT_FILE"] = str(self.tls_ca)
        env["COLUMNS"] = "200"
        return env

    def cli(self, user: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [KUBEJIT, *args], env=self.env_for(user), capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"kubejit {' '.join(args)} exited {done.returncode}:\n{done.stderr}{done.stdout}"
            )
        return done

    def json(self, user: str, *args: str) -> Any:
        import json

        return json.loads(self.cli(user, *args, "-o", "json").stdout)["data"]

    def login(self, *users: str) -> None:
        for user in users:
            self.cli(user, "login", "--dev-user", user)

    def session_token(self, user: str) -> str:
        import json

        session = self.workdir / "people" / user / ".config" / "kubejit" / "session.json"
        return str(json.loads(session.read_text())["token"])

    def grant_token(self, user: str, grant_id: str) -> str:
        """The Kubernetes token for a grant, fetched as the user from the broker's API."""
        headers = {"authorization": f"Bearer {self.session_token(user)}"}
        answer = httpx.post(
            f"{self.url}/v1/grants/{grant_id}/token", headers=headers, timeout=30, verify=self.verify
        )
        answer.raise_for_status()
        return str(answer.json()["token"])

    def kubectl(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KUBECTL, *args], env=self.env_for(user), capture_output=True, text=True, timeout=60
        )
