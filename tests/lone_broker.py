"""`kubejit serve` as a real process whose one cluster never answers: for tests of the broker's own
serving (TLS, policy reload, logs) that need no Kubernetes API.

The cluster's kubeconfig points at a loopback port nothing listens on, so the reconciler reports it
unreachable and everything else (login, whoami, probes) works as in production.
"""

from __future__ import annotations

import os
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import yaml

from kubejit.testing.processes import free_port, log_tail
from tests.broker_process import E2E_POLICY, KUBEJIT, USERS
from tests.polling import poll


@dataclass
class LoneBroker:
    workdir: Path
    policy: str = E2E_POLICY
    #: Laid over the ``broker`` section (host, port) of the config.
    broker: dict[str, Any] = field(default_factory=dict)
    #: Other top-level sections (``logging``, ``audit``, ...).
    extra_config: dict[str, Any] = field(default_factory=dict)
    #: The CA file clients trust when the broker serves TLS.
    ca_path: Path | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if 'tls' in self.broker else 'http'}://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    @property
    def policy_path(self) -> Path:
        return self.workdir / "policy.yaml"

    @property
    def db_path(self) -> Path:
        return self.workdir / "kubejit.db"

    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.ca_path)) if self.ca_path else True

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.verify(), timeout=10)

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.policy_path.exists():
            self.policy_path.write_text(self.policy)
        kubeconfig = self.workdir / "nowhere.kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}],
                    "users": [{"name": "u", "user": {"token": "none"}}],
                    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "c",
                }
            )
        )
        config = {
            "broker": {"host": "127.0.0.1", "port": self.port, **self.broker},
            "store": {"url": f"sqlite:///{self.db_path}"},
            "dataDir": str(self.workdir / "data"),
            "clusters": [{"name": "nowhere", "kubeconfig": str(kubeconfig), "audience": "https://nowhere"}],
            "policyFile": "policy.yaml",
            "devIssuer": {"enabled": True, "users": USERS},
            **self.extra_config,
        }
        path = self.workdir / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self) -> Self:
        config = self.write_config()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [KUBEJIT, "serve", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(os.environ),
            )
        if not poll(self._healthy, bool, within=60, every=0.1):
            raise AssertionError(f"broker never became healthy: {log_tail(self.log_path)}")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"broker exited: {log_tail(self.log_path, lines=30)}")
        try:
            return httpx.get(f"{self.url}/healthz", verify=self.verify(), timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def login(self, user: str) -> str:
        """A dev-issuer ID token for ``user`` (the API the CLI's `login --dev-user` calls)."""
        with self.client() as http:
            answer = http.post("/v1/dev/login", json={"user": user})
            answer.raise_for_status()
            return str(answer.json()["token"])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")
