"""docs/deploy.md's SQLite backup and restore, as written: a copy taken while the broker runs
(``VACUUM INTO`` and the online backup API behind sqlite3's ``.backup``) verifies, and a broker
restored from it serves and extends the same chain."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

from kubejit.audit.checkpoint import load_public_key, public_pem
from tests.broker_process import KUBEJIT
from tests.lone_broker import LoneBroker


def verify(public_key: Path, db: Path) -> subprocess.CompletedProcess[str]:
    """``kubejit audit verify`` of a database file, checking checkpoints with the kept public key."""
    return subprocess.run(
        [KUBEJIT, "audit", "verify", "--store-url", f"sqlite:///{db}", "--public-key", str(public_key)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_backup_taken_while_serving_verifies_and_restores(tmp_path: Path) -> None:
    broker = LoneBroker(tmp_path / "broker", extra_config={"audit": {"checkpointIntervalSeconds": 1}})
    broker.start()
    try:
        for user in ("alice", "bob"):
            broker.login(user)
        vacuumed, copied = tmp_path / "vacuum-into.db", tmp_path / "backup-api.db"
        live = sqlite3.connect(broker.db_path)
        try:
            live.execute("VACUUM INTO ?", (str(vacuumed),))
            with sqlite3.connect(copied) as target:
                live.backup(target)
        finally:
            live.close()
        broker.login("carol")  # the live log moves on past the backup
    finally:
        broker.stop()
    # The checkpoint key's public half, kept off the broker (docs/audit.md).
    public_key = tmp_path / "checkpoint.pub"
    public_key.write_text(public_pem(load_public_key(broker.workdir / "data" / "audit-checkpoint-key.pem")))
    for backup in (vacuumed, copied):
        done = verify(public_key, backup)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "signed checkpoints" in done.stdout and "OK" in done.stdout, done.stdout
        assert "not checked" not in done.stderr, done.stderr

    for leftover in broker.workdir.glob("kubejit.db*"):
        leftover.unlink()  # the database and its -wal/-shm files
    shutil.copy(vacuumed, broker.db_path)
    broker.start()
    try:
        broker.login("alice")
        with broker.client() as client:
            assert client.get("/readyz").status_code == 200
    finally:
        broker.stop()
    done = verify(public_key, broker.db_path)
    assert done.returncode == 0, done.stdout + done.stderr
