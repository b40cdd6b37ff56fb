"""A real Kubernetes control plane on loopback: etcd + kube-apiserver, for tests and `kubejit dev-cluster`.

There are no nodes and no controller-manager: kubejit only needs the API (ServiceAccounts,
RoleBindings, TokenRequest, RBAC checks, audit), and these two processes start in seconds. Each
cluster gets fresh certificates, its own ServiceAccount signing key and a unique issuer, so a token
of one cluster is Unauthorized on another. Failures at start-up become one ``DevClusterError`` and
leave nothing running; only the logs stay behind, for diagnosis.

Revocation latency: kube-apiserver caches a *successful* token authentication for 10 s
(``TokenSuccessCacheTTL``; no flag changes it), so a deleted ServiceAccount's token is rejected
within about 10 s, not instantly.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from kubejit.errors import DevClusterError
from kubejit.testing import binaries
from kubejit.testing.certs import ClusterCertificates, write_certificates, write_private_file
from kubejit.testing.kubeconfig import write_admin_kubeconfig
from kubejit.testing.processes import (
    LOOPBACK,
    free_port,
    is_alive,
    log_tail,
    port_is_free,
    spawn,
    terminate,
)
from kubejit.testing.rbac_aggregation import aggregated_rules
from kubejit.testing.state import (
    STATE_FILE,
    ClusterState,
    read_state,
    validate_cluster_name,
    write_state,
)

logger = logging.getLogger(__name__)

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
READY_TIMEOUT_SECONDS = 90.0
#: Metadata (who, what, when; never bodies, so never tokens) for every request after it is handled.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
"""

# Everything the control plane writes in its work dir; stop() removes exactly these.
PKI_DIR = "pki"
ETCD_DATA_DIR = "etcd-data"
ETCD_LOG = "etcd.log"
APISERVER_LOG = "kube-apiserver.log"
KUBECONFIG_FILE = "kubeconfig"
AUDIT_LOG = "audit.log"
AUDIT_POLICY_FILE = "audit-policy.yaml"
AUTHENTICATION_CONFIG_FILE = "authentication-config.yaml"
OWNER_MARKER = ".kubejit-control-plane"
_LOGS = (ETCD_LOG, APISERVER_LOG)
_MANAGED = (
    PKI_DIR,
    ETCD_DATA_DIR,
    KUBECONFIG_FILE,
    AUDIT_LOG,
    AUDIT_POLICY_FILE,
    AUTHENTICATION_CONFIG_FILE,
    STATE_FILE,
    *_LOGS,
)
_PORT_RETRIES = 3
_BUILD_HINT = (
    "Run `scripts/k8s-binaries` once to build them (10-20 minutes cold), put both on PATH, "
    "or point KUBEJIT_BIN_CACHE at a folder that has them."
)


def issuer_for(name: str) -> str:
    """The ServiceAccount token issuer (and audience) of the cluster called ``name``."""
    return f"https://{validate_cluster_name(name)}.kubejit.local"


@dataclass(frozen=True)
class ControlPlaneBinaries:
    etcd: Path
    kube_apiserver: Path


def locate_binaries() -> ControlPlaneBinaries:
    """The pinned binaries, found on PATH or in the cache; never builds (that takes many minutes)."""
    found = {binary.name: binaries.find(binary) for binary in (binaries.ETCD, binaries.KUBE_APISERVER)}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise DevClusterError(
            f"{' and '.join(missing)} not found on PATH or in {binaries.cache_root()}",
            hint=_BUILD_HINT,
        )
    etcd, apiserver = found["etcd"], found["kube-apiserver"]
    assert etcd is not None and apiserver is not None
    return ControlPlaneBinaries(etcd=etcd, kube_apiserver=apiserver)


def ensure_binaries(*, log: Callable[[str], None] = logger.warning) -> ControlPlaneBinaries:
    """The pinned binaries, building the missing ones into the cache first (for test sessions)."""
    try:
        return ControlPlaneBinaries(
            etcd=binaries.ensure(binaries.ETCD, log=log),
            kube_apiserver=binaries.ensure(binaries.KUBE_APISERVER, log=log),
        )
    except binaries.BinaryUnavailable as e:
        raise DevClusterError(str(e), hint=_BUILD_HINT) from e


@dataclass(frozen=True)
class _Ports:
    apiserver: int
    etcd_client: int
    etcd_peer: int


class _EarlyExit(Exception):
    """A control-plane process ended before the API server was ready."""

    def __init__(self, component: str, code: int, tail: str) -> None:
        super().__init__(f"{component} exited during start-up (exit code {code})")
        self.component, self.tail = component, tail

    @property
    def port_taken(self) -> bool:
        return "address already in use" in self.tail


class ControlPlane:
    """etcd + kube-apiserver in ``workdir``; ``start()`` returns once ``/readyz`` answers 200.

    ``detached=True`` (the CLI) starts both in their own session so they outlive this process;
    ``ControlPlane.attach(workdir)`` finds them again from ``state.json``.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        name: str = "dev",
        port: int | None = None,
        detached: bool = False,
        binaries: ControlPlaneBinaries | None = None,
        ready_timeout: float = READY_TIMEOUT_SECONDS,
        authentication_config: str | None = None,
    ) -> None:
        self.name = validate_cluster_name(name)
        #: An AuthenticationConfiguration (YAML) for --authentication-config: e.g. kubejit as a JWT
        #: issuer (`kubejit cluster-setup --mode jwt`). None: client certificates and SA tokens only.
        self.authentication_config = authentication_config
        self.workdir = Path(workdir).absolute()
        self.issuer = issuer_for(name)
        self.audience = self.issuer
        self.startup_seconds: float | None = None
        self._requested_port = port
        self._detached = detached
        self._binaries = binaries
        self._ready_timeout = ready_timeout
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._state: ClusterState | None = None
        self._created_workdir = False
        self._spawned = False  # a process ran: its logs outlive a failed start, for diagnosis

    @classmethod
    def attach(cls, workdir: Path) -> ControlPlane | None:
        """The control plane recorded in ``workdir/state.json`` (running or stale), or None."""
        state = read_state(Path(workdir).absolute())
        if state is None:
            return None
        plane = cls(Path(state.workdir), name=state.name)
        plane._state = state
        plane._created_workdir = state.created_workdir
        return plane

    # -- what callers use ------------------------------------------------------------------------
    @property
    def state(self) -> ClusterState:
        if self._state is None:
            raise DevClusterError(f"the control plane {self.name!r} is not started")
        return self._state

    @property
    def server(self) -> str:
        return self.state.server

    @property
    def port(self) -> int:
        return self.state.port

    @property
    def etcd_pid(self) -> int:
        return self.state.etcd_pid

    @property
    def apiserver_pid(self) -> int:
        return self.state.apiserver_pid

    @property
    def ca_path(self) -> Path:
        return self.workdir / PKI_DIR / "ca.crt"

    @property
    def kubeconfig_path(self) -> Path:
        return self.workdir / KUBECONFIG_FILE

    @property
    def authentication_config_path(self) -> Path:
        return self.workdir / AUTHENTICATION_CONFIG_FILE

    @property
    def audit_log_path(self) -> Path:
        return self.workdir / AUDIT_LOG

    def is_running(self) -> bool:
        """Both processes of the recorded state are alive (a reused pid does not count)."""
        if self._state is None:
            return False
        marker = str(self.workdir)
        return is_alive(self._state.etcd_pid, marker=marker) and is_alive(
            self._state.apiserver_pid, marker=marker
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- start -----------------------------------------------------------------------------------
    def start(self) -> Self:
        if self.is_running():
            raise DevClusterError(f"the control plane {self.name!r} is already running at {self.server}")
        found = self._binaries or locate_binaries()
        self._check_requested_port()
        self._prepare_workdir()
        began = time.monotonic()
        try:
            certs = write_certificates(self.workdir / PKI_DIR, cluster_name=self.name)
            write_private_file(self.workdir / AUDIT_POLICY_FILE, AUDIT_POLICY.encode())
            if self.authentication_config is not None:
                write_private_file(self.authentication_config_path, self.authentication_config.encode())
            self._launch_with_retries(found, certs)
        except BaseException:
            self._abort()
            raise
        self.startup_seconds = time.monotonic() - began
        logger.info("control plane %r ready at %s in %.1fs", self.name, self.server, self.startup_seconds)
        return self

    def _check_requested_port(self) -> None:
        port = self._requested_port
        if port is None:
            return
        if not 1 <= port <= 65535:
            raise DevClusterError(f"port {port} is not a TCP port (1-65535)")
        if not port_is_free(port):
            raise DevClusterError(
                f"port {port} on {LOOPBACK} is already in use",
                hint="Choose another with --port, or leave --port out to pick a free one.",
            )

    def _prepare_workdir(self) -> None:
        """Create (or reuse) the work dir, refusing a foreign non-empty one and clearing a stale run."""
        existed = self.workdir.exists()
        try:
            self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise DevClusterError(
                f"cannot create the cluster directory {self.workdir}: {e.strerror or e}",
                hint="Pass a writable location with --dir.",
            ) from e
        marker = self.workdir / OWNER_MARKER
        if existed and not marker.exists() and any(self.workdir.iterdir()):
            raise DevClusterError(
                f"{self.workdir} is not empty and was not created by kubejit dev-cluster",
                hint="Pass a new or empty directory with --dir.",
            )
        self._created_workdir = not existed or (marker.exists() and marker.read_text().strip() == "created")
        self._clear_stale_run()
        try:
            marker.write_text("created\n" if self._created_workdir else "adopted\n")
        except OSError as e:
            raise DevClusterError(
                f"cannot write to the cluster directory {self.workdir}: {e.strerror or e}",
                hint="Pass a writable location with --dir.",
            ) from e

    def _clear_stale_run(self) -> None:
        previous = read_state(self.workdir)
        if previous is not None:
            stale = ControlPlane.attach(self.workdir)
            assert stale is not None
            if stale.is_running():
                raise DevClusterError(
                    f"a control plane is already running in {self.workdir} at {previous.server}",
                    hint="Stop it first with `kubejit dev-cluster stop`.",
                )
            stale._terminate_processes()
        self._remove_files(keep_logs=False)

    def _choose_ports(self) -> _Ports:
        apiserver = self._requested_port or free_port()
        taken = {apiserver}
        others: list[int] = []
        while len(others) < 2:
            candidate = free_port()
            if candidate not in taken:
                taken.add(candidate)
                others.append(candidate)
        return _Ports(apiserver=apiserver, etcd_client=others[0], etcd_peer=others[1])

    def _launch_with_retries(self, found: ControlPlaneBinaries, certs: ClusterCertificates) -> None:
        """Launch; when a freshly chosen port was grabbed by someone else meanwhile, try new ports."""
        for attempt in range(1, _PORT_RETRIES + 1):
            try:
                self._launch(found, certs, self._choose_ports())
                return
            except _EarlyExit as e:
                self._terminate_processes()
                if e.port_taken and self._requested_port is None and attempt < _PORT_RETRIES:
                    logger.info("%s; retrying with other ports", e)
                    shutil.rmtree(self.workdir / ETCD_DATA_DIR, ignore_errors=True)
                    continue
                raise DevClusterError(
                    f"{e}; last lines of its log:\n{e.tail}",
                    hint=f"Full logs: {self.workdir / ETCD_LOG} and {self.workdir / APISERVER_LOG}.",
                ) from e

    def _launch(self, found: ControlPlaneBinaries, certs: ClusterCertificates, ports: _Ports) -> None:
        server = f"https://{LOOPBACK}:{ports.apiserver}"
        self._spawned = True
        write_admin_kubeconfig(self.kubeconfig_path, name=self.name, server=server, certs=certs)
        self._children["etcd"] = spawn(
            [str(found.etcd), *self._etcd_args(ports)],
            log_path=self.workdir / ETCD_LOG,
            detached=self._detached,
        )
        self._children["kube-apiserver"] = spawn(
            [str(found.kube_apiserver), *self._apiserver_args(ports, certs)],
            log_path=self.workdir / APISERVER_LOG,
            detached=self._detached,
        )
        context = _admin_tls_context(certs)
        self._wait_ready(ports.apiserver, context)
        _fill_aggregated_cluster_roles(context, ports.apiserver)
        self._state = ClusterState(
            name=self.name,
            workdir=str(self.workdir),
            server=server,
            port=ports.apiserver,
            etcd_client_port=ports.etcd_client,
            etcd_peer_port=ports.etcd_peer,
            etcd_pid=self._children["etcd"].pid,
            apiserver_pid=self._children["kube-apiserver"].pid,
            kubeconfig_path=str(self.kubeconfig_path),
            ca_path=str(self.ca_path),
            audit_log_path=str(self.audit_log_path),
            issuer=self.issuer,
            audience=self.audience,
            created_workdir=self._created_workdir,
            started_at=time.time(),
        )
        write_state(self._state)

    def _etcd_args(self, ports: _Ports) -> list[str]:
        client = f"http://{LOOPBACK}:{ports.etcd_client}"
        peer = f"http://{LOOPBACK}:{ports.etcd_peer}"
        return [
            f"--name={self.name}",
            f"--data-dir={self.workdir / ETCD_DATA_DIR}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={self.name}={peer}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync",  # throw-away data: durability is not worth the start-up time
            "--log-level=warn",
        ]

    def _apiserver_args(self, ports: _Ports, certs: ClusterCertificates) -> list[str]:
        return [
            f"--etcd-servers=http://{LOOPBACK}:{ports.etcd_client}",
            f"--secure-port={ports.apiserver}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            # A loopback address cannot be an Endpoints address; upstream's test server does the same.
            "--endpoint-reconciler-type=none",
            f"--cert-dir={certs.ca_cert.parent}",
            f"--tls-cert-file={certs.serving_cert}",
            f"--tls-private-key-file={certs.serving_key}",
            f"--client-ca-file={certs.ca_cert}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={self.issuer}",
            f"--service-account-key-file={certs.service_account_pub}",
            f"--service-account-signing-key-file={certs.service_account_key}",
            f"--api-audiences={self.audience}",
            # Tokens live exactly as long as requested (the default stretches some to a year).
            "--service-account-extend-token-expiration=false",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--audit-policy-file={self.workdir / AUDIT_POLICY_FILE}",
            f"--audit-log-path={self.audit_log_path}",
            "--audit-log-mode=blocking",
            "--audit-log-maxsize=100",  # MB; a dev cluster left running for weeks stays bounded
            "--audit-log-maxbackup=2",
            # No controller-manager creates the `default` ServiceAccount that this plugin demands.
            "--disable-admission-plugins=ServiceAccount",
            "--profiling=false",
            *self._authentication_args(),
        ]

    def _authentication_args(self) -> list[str]:
        if self.authentication_config is None:
            return []
        # kube-apiserver reloads this file when it changes; the JWT issuers in it are fetched in the
        # background (an issuer not up yet is retried), so it never delays /readyz.
        return [f"--authentication-config={self.authentication_config_path}"]

    def _wait_ready(self, port: int, context: ssl.SSLContext) -> None:
        deadline = time.monotonic() + self._ready_timeout
        last = "no answer yet"
        while True:
            self._raise_if_exited()
            status, last = _probe_readyz(context, port)
            if status == 200:
                return
            if time.monotonic() > deadline:
                tail = log_tail(self.workdir / APISERVER_LOG)
                raise DevClusterError(
                    f"kube-apiserver did not become ready within {self._ready_timeout:.0f}s ({last}); "
                    f"last lines of its log:\n{tail}",
                    hint=f"Full logs: {self.workdir / APISERVER_LOG} and {self.workdir / ETCD_LOG}.",
                )
            time.sleep(0.1)

    def _raise_if_exited(self) -> None:
        for component, child in self._children.items():
            code = child.poll()
            if code is not None:
                log_file = ETCD_LOG if component == "etcd" else APISERVER_LOG
                raise _EarlyExit(component, code, log_tail(self.workdir / log_file))

    # -- stop ------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Terminate kube-apiserver then etcd (SIGTERM, then SIGKILL) and remove every file made."""
        self._terminate_processes()
        self._remove_files(keep_logs=False)
        self._release_workdir()
        self._state = None

    def _abort(self) -> None:
        """Undo a failed start: nothing keeps running; the logs stay if a process ever ran."""
        self._terminate_processes()
        self._remove_files(keep_logs=self._spawned)
        if not self._spawned:
            self._release_workdir()
        self._state = None

    def _terminate_processes(self) -> None:
        marker = str(self.workdir)
        for component in ("kube-apiserver", "etcd"):
            child = self._children.pop(component, None)
            if child is not None:
                _stop_child(child)
            elif self._state is not None:
                pid = self._state.apiserver_pid if component == "kube-apiserver" else self._state.etcd_pid
                terminate(pid, marker=marker)

    def _remove_files(self, *, keep_logs: bool) -> None:
        kept = set(_LOGS) if keep_logs else set()
        for entry in _MANAGED:
            if entry in kept:
                continue
            path = self.workdir / entry
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def _release_workdir(self) -> None:
        (self.workdir / OWNER_MARKER).unlink(missing_ok=True)
        if self._created_workdir:
            with contextlib.suppress(OSError):  # not empty: someone else's files stay
                self.workdir.rmdir()


def _stop_child(child: subprocess.Popen[bytes], *, grace_seconds: float = 10.0) -> None:
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(timeout=10)


def _admin_tls_context(certs: ClusterCertificates) -> ssl.SSLContext:
    """Trust only the cluster's CA, and present the admin client certificate."""
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    context.load_cert_chain(str(certs.admin_cert), str(certs.admin_key))
    return context


_CLUSTER_ROLES = "/apis/rbac.authorization.k8s.io/v1/clusterroles"


def _api(context: ssl.SSLContext, port: int, method: str, path: str, body: object = None) -> tuple[int, Any]:
    """One JSON request as the admin; the harness needs too few calls to warrant a client library."""
    connection = http.client.HTTPSConnection(LOOPBACK, port, context=context, timeout=15)
    try:
        connection.request(
            method,
            path,
            body=None if body is None else json.dumps(body).encode(),
            headers={"Accept": "application/json", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as e:
        raise DevClusterError(
            f"kube-apiserver stopped answering during start-up: {method} {path}: {e}"
        ) from e
    finally:
        connection.close()
    try:
        return response.status, json.loads(data or b"{}")
    except ValueError:
        return response.status, {"message": data[:200].decode("utf-8", errors="replace")}


def _fill_aggregated_cluster_roles(context: ssl.SSLContext, port: int, *, attempts: int = 3) -> None:
    """Give admin/edit/view their rules, since no kube-controller-manager aggregates them here."""
    for _ in range(attempts):
        status, listing = _api(context, port, "GET", _CLUSTER_ROLES)
        if status != 200:
            raise DevClusterError(f"could not list ClusterRoles during start-up: HTTP {status}")
        roles = {role["metadata"]["name"]: role for role in listing.get("items", [])}
        conflicted = False
        for name, rules in aggregated_rules(list(roles.values())).items():
            updated = dict(
                roles[name], apiVersion="rbac.authorization.k8s.io/v1", kind="ClusterRole", rules=rules
            )
            status, answer = _api(context, port, "PUT", f"{_CLUSTER_ROLES}/{name}", updated)
            if status == 409:
                conflicted = True
            elif status != 200:
                raise DevClusterError(
                    f"could not fill the aggregated ClusterRole {name!r}: HTTP {status} {answer.get('message', '')}"
                )
        if not conflicted:
            return
    raise DevClusterError("the aggregated ClusterRoles kept changing during start-up; try again")


def _probe_readyz(context: ssl.SSLContext, port: int) -> tuple[int | None, str]:
    """(HTTP status, short reason) of GET /readyz, or (None, why) when it did not answer."""
    connection = http.client.HTTPSConnection(LOOPBACK, port, context=context, timeout=5)
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        body = response.read().decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException) as e:
        return None, f"/readyz: {e}"
    finally:
        connection.close()
    failing = [line.strip() for line in body.splitlines() if line.startswith("[-]")]
    return response.status, f"/readyz {response.status}: {', '.join(failing) or body.strip()[:200]}"
