"""A throwaway PostgreSQL server for tests and benchmarks: initdb + pg_ctl in a temporary directory,
on a free loopback port, trust authentication, durability off (fsync, synchronous_commit).

Needs the server binaries (Debian ``postgresql``; ``scripts/test`` installs it). As root the server
runs as the ``postgres`` user (initdb refuses root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from kubejit.testing.processes import free_port


def postgres_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are (the newest Debian cluster version first), or None."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name or 0)
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class ThrowawayPostgres:
    """initdb + pg_ctl in a temp dir; as root, the server runs as the ``postgres`` user (initdb refuses root)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="kubejit-pg-"))
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres" if _user_exists("postgres") else "nobody"
            shutil.chown(self.dir, user=self.user)

    def _run(self, *args: str) -> None:
        result = subprocess.run(args, user=self.user, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = self.dir / "server.log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}{tail}")

    def start(self) -> None:
        data = str(self.dir / "data")
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            data,
            "-U",
            "kubejit",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "start",
            "-D",
            data,
            "-o",
            options,
            "-l",
            str(self.dir / "server.log"),
            "-w",
        )

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run(str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.dir / "data"), "-m", "fast", "-w")
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://kubejit@127.0.0.1:{self.port}/postgres"


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
