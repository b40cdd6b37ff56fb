"""The broker image, built by scripts/image, serving a real grant from inside the container.

scripts/image builds it with buildah from the repository's Containerfile on a base made from Debian
packages (cached under KUBEJIT_IMAGE_CACHE: a warm run only re-tags). The image's own ``kubejit serve``
runs with ``buildah run --isolation chroot`` (which shares the host's network, so the broker and the
test control plane meet on loopback) as its non-root user, with the container's root filesystem
mounted read-only: the only writable places are the data dir (a host directory mounted at
/data) and the image's volumes (/var/lib/kubejit, /tmp), as in the chart's pods. A grant is requested, used with the
real kubectl, and revoked, against the broker in the image.

Needs root (buildah, mount), buildah and mmdebstrap: scripts/test installs them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import pytest
import yaml

from kubejit.testing.controlplane import ControlPlane
from kubejit.testing.kubectl import KubectlResult, RedactedToken, kubectl_with_token
from kubejit.testing.processes import log_tail
from tests.broker_identity import BrokerIdentity
from tests.broker_process import USERS, Broker
from tests.polling import eventually, poll

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/kubejit:e2e"
UID = 65532
CONFIG_DIR = "/etc/kubejit"
# The host directory the broker writes to. Not the image's VOLUME /var/lib/kubejit: buildah 1.28 run
# empties a host directory bind-mounted over an image VOLUME while the process runs (seen here; the
# chart's pods mount an emptyDir there, which a kubelet handles).
DATA_DIR = "/data"


@dataclass(frozen=True)
class Buildah:
    """buildah on scripts/image's storage (vfs, under KUBEJIT_IMAGE_CACHE)."""

    storage: list[str]

    def __call__(self, *args: str) -> str:
        done = subprocess.run(["buildah", *self.storage, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"buildah {' '.join(args)}: {done.stderr}"
        return done.stdout.strip()

    def command(self, *args: str) -> list[str]:
        return ["buildah", *self.storage, *args]


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "image"), *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def buildah() -> Buildah:
    """The image built (or found up to date) by scripts/image."""
    if os.geteuid() != 0 or shutil.which("buildah") is None or shutil.which("mmdebstrap") is None:
        pytest.fail(
            "the image test runs buildah and mmdebstrap as root: run it as root after "
            "`apt-get install buildah mmdebstrap` (scripts/test does both)",
            pytrace=False,
        )
    built = _script("--tag", IMAGE)
    assert built.returncode == 0, f"scripts/image failed:\n{built.stdout[-4000:]}{built.stderr[-4000:]}"
    assert f"image: {IMAGE}" in built.stdout, built.stdout[-2000:]
    return Buildah(_script("--print-storage-flags").stdout.split())


@dataclass(frozen=True)
class Container:
    name: str
    rootfs: Path


@pytest.fixture
def container(buildah: Buildah) -> Iterator[Container]:
    """A working container of the image whose root filesystem is read-only (a read-only bind mount of
    itself; /run a root-owned tmpfs, where buildah puts its mount points), removed afterwards."""
    name = buildah("from", "--pull=never", IMAGE)
    rootfs = Path(buildah("mount", name))
    mounted: list[Path] = []
    (rootfs / CONFIG_DIR.lstrip("/")).mkdir(exist_ok=True)  # a mount point, as a kubelet makes one
    (rootfs / DATA_DIR.lstrip("/")).mkdir(exist_ok=True)
    try:
        for args in (
            ["--bind", str(rootfs), str(rootfs)],
            ["-o", "remount,bind,ro", str(rootfs)],
            ["-t", "tmpfs", "-o", "mode=755,size=1m", "tmpfs", str(rootfs / "run")],
        ):
            subprocess.run(["mount", *args], check=True)
            if args[0] != "-o":
                mounted.append(Path(args[-1]))
        yield Container(name, rootfs)
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", str(path)], check=False)
        buildah("umount", name)
        buildah("rm", name)


def _owned_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    os.chown(path, UID, UID)
    return path


@dataclass
class ImageBroker(Broker):
    """The e2e Broker, but ``kubejit serve`` is the image's, run by ``buildah run`` in ``container``."""

    buildah: Buildah | None = None
    container: Container | None = None

    def write_config(self) -> Path:
        etc = _owned_dir(self.workdir / "etc")
        clusters = []
        for identity in self.identities:
            kubeconfig = etc / f"{identity.plane.name}.kubeconfig"
            shutil.copyfile(identity.kubeconfig_path, kubeconfig)
            os.chown(kubeconfig, UID, UID)
            kubeconfig.chmod(0o600)
            clusters.append(
                {
                    "name": identity.plane.name,
                    "kubeconfig": f"{CONFIG_DIR}/{kubeconfig.name}",
                    "audience": identity.plane.audience,
                }
            )
        (etc / "policy.yaml").write_text(self.policy)
        config: dict[str, Any] = {
            "broker": {"host": "127.0.0.1", "port": self.port},
            "store": {"url": f"sqlite:///{DATA_DIR}/kubejit.db"},
            "dataDir": DATA_DIR,
            "clusters": clusters,
            "policyFile": f"{CONFIG_DIR}/policy.yaml",
            "devIssuer": {"enabled": True, "users": USERS},
            "workers": {"sweepIntervalSeconds": self.sweep_interval, "reconcileIntervalSeconds": 2},
        }
        (etc / "config.yaml").write_text(yaml.safe_dump(config))
        return etc / "config.yaml"

    def start(self) -> Self:
        assert self.buildah is not None and self.container is not None
        self.write_config()
        data = _owned_dir(self.workdir / "data")
        command = self.buildah.command(
            "run", "--isolation", "chroot",
            "-v", f"{self.workdir / 'etc'}:{CONFIG_DIR}:ro",
            "-v", f"{data}:{DATA_DIR}",
            self.container.name, "--",
            "kubejit", "serve", "--config", f"{CONFIG_DIR}/config.yaml",
        )  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        if not poll(self._healthy, bool, within=120, every=0.2):
            raise AssertionError(f"the image's broker never became healthy: {log_tail(self.log_path)}")
        return self


def _stop_inside(broker: ImageBroker, container: Container) -> None:
    """SIGTERM to the image's broker itself, as a runtime signals a container's process, and wait for
    ``buildah run`` to end with it. (Signalling buildah instead is no way to stop it: buildah 1.28 then
    kills the process and empties the data dir bind-mounted over the image's VOLUME.)"""
    assert broker.process is not None
    for pid in _served_from(container.rootfs):
        os.kill(pid, signal.SIGTERM)
    try:
        broker.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        broker.stop()
        raise


def _served_from(rootfs: Path) -> list[int]:
    """Pids of ``kubejit serve`` processes chrooted into ``rootfs`` (buildah chroots into a bind mount
    of it: the same directory, so the same device and inode)."""
    wanted = (rootfs.stat().st_dev, rootfs.stat().st_ino)
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            root = (proc / "root").stat()
        except OSError:
            continue
        # The venv's interpreter running its kubejit script (not buildah's chroot helper around it).
        serving = cmdline[:3] == [b"/opt/kubejit/bin/python3", b"/opt/kubejit/bin/kubejit", b"serve"]
        if serving and (root.st_dev, root.st_ino) == wanted:
            found.append(int(proc.name))
    return found


def _ids(pid: int) -> tuple[set[str], set[str]]:
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return set(status["Uid"].split()), set(status["Gid"].split())


def test_the_images_broker_serves_a_grant(
    buildah: Buildah,
    container: Container,
    tmp_path: Path,
    broker_identity: BrokerIdentity,
    control_plane: ControlPlane,
    namespaces: Callable[..., list[str]],
) -> None:
    (granted,) = namespaces(control_plane, 1)
    broker = ImageBroker(tmp_path / "broker", [broker_identity], buildah=buildah, container=container)
    broker.workdir.mkdir()
    broker.start()
    try:
        served = poll(lambda: _served_from(container.rootfs), lambda pids: len(pids) == 1, within=30)
        assert len(served) == 1, served
        (pid,) = served
        assert _ids(pid) == ({str(UID)}, {str(UID)})  # the image's non-root user, real and effective

        broker.login("alice")
        grant = broker.json("alice", "request", "-c", control_plane.name, "-n", granted, "-r", "view")
        assert grant["state"] == "active", grant
        token = RedactedToken(broker.grant_token("alice", grant["id"]))

        def as_grant(*args: str) -> KubectlResult:
            return kubectl_with_token(
                list(args), server=control_plane.server, ca_path=control_plane.ca_path, token=token
            )

        assert as_grant("get", "pods", "-n", granted).ok
        assert as_grant("get", "pods", "-n", "default").forbidden
        assert broker.json("alice", "revoke", grant["id"], "--reason", "done")["state"] == "revoked"
        eventually(lambda: as_grant("get", "pods", "-n", granted).unauthorized, what="grant token rejected")
    finally:
        _stop_inside(broker, container)
    assert broker.process is not None and broker.process.returncode is not None
    eventually(lambda: _served_from(container.rootfs) == [], what="the image's broker gone")
    # It wrote its store and its data where the data dir is mounted, as its own user.
    written = list((broker.workdir / "data").iterdir())
    assert "kubejit.db" in {p.name for p in written}
    assert {(p.stat().st_uid, p.stat().st_gid) for p in written} == {(UID, UID)}


PROBE = """
import importlib.util, json, os, shutil
def write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return "written"
    except OSError as error:
        return error.strerror
print(json.dumps({
    "uid": os.getuid(),
    "root": {p: write(p) for p in ("/x", "/opt/kubejit/x", "/etc/x", "/usr/x")},
    "tmp": write("/tmp/x"),
    "data": write("/data/x"),
    "volume": write("/var/lib/kubejit/x"),
    "tools": sorted(t for t in ("gcc", "cc", "make", "pip", "pip3", "apt-get", "dpkg-buildpackage") if shutil.which(t)),
    "modules": sorted(m for m in ("pip", "setuptools", "build", "wheel") if importlib.util.find_spec(m)),
}))
"""


def test_the_image_is_non_root_read_only_and_holds_no_build_tools(
    buildah: Buildah, container: Container, tmp_path: Path
) -> None:
    config = json.loads(buildah("inspect", "--type", "image", IMAGE))["OCIv1"]["config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["kubejit", "serve"]
    labels = config["Labels"]
    version = subprocess.run(
        ["python3", "-c", "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.title"] == "kubejit"
    assert labels["org.opencontainers.image.revision"] not in ("", "unknown")
    data = _owned_dir(tmp_path / "data")
    probed = json.loads(
        buildah(
            "run",
            "--isolation",
            "chroot",
            "-v",
            f"{data}:{DATA_DIR}",
            container.name,
            "--",
            "python3",
            "-c",
            PROBE,
        )
    )
    assert probed["uid"] == UID
    assert set(probed["root"].values()) == {"Read-only file system"}, probed["root"]
    assert probed["tmp"] == probed["data"] == probed["volume"] == "written"
    assert probed["tools"] == [] and probed["modules"] == [], probed
    assert (data / "x").stat().st_uid == UID
