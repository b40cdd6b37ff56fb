"""`kubejit audit verify` against real databases: every kind of tampering is found and named.

Each test builds a signed chain in SQLite or a throwaway PostgreSQL, tampers with it in plain SQL
(as an attacker with database access would), then runs the real command and reads its verdict.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from kubejit.audit.chain import seal
from kubejit.audit.checkpoint import load_or_create_signing_key, public_pem
from kubejit.cli.commands.audit import EXIT_TAMPERED, app
from kubejit.grants.ports import AuditEvent
from kubejit.store import SqlAuditStore, audit_verify
from kubejit.store.audit_verify import verify_log
from kubejit.store.checkpoints import list_checkpoints, write_checkpoint
from kubejit.store.tables import audit_events
from tests.broker_process import KUBEJIT
from tests.integration import test_store

# The store tests' fixtures: SQLite always, and a throwaway PostgreSQL.
engine = test_store.engine
store_url = test_store.store_url
postgres_admin_url = test_store.postgres_admin_url

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _event(n: int) -> AuditEvent:
    return AuditEvent(
        action="grant.activated",
        actor="kubejit",
        at=T0 + timedelta(seconds=n),
        grant_id=None,
        subject="alice",
        cluster="prod",
        details={"n": n, "namespaces": ["payments"], "reason": "INC-1"},
    )


@pytest.fixture
def key(tmp_path: Path) -> Ed25519PrivateKey:
    return load_or_create_signing_key(tmp_path / "keys" / "checkpoint.pem")


@pytest.fixture
def signed(engine: Engine, key: Ed25519PrivateKey) -> Engine:
    """Events 1..5, checkpoint at 5 (event 6 is its copy), events 7..10, checkpoint at 10 (event 11)."""
    store = SqlAuditStore(engine)
    for n in range(1, 6):
        store.record([_event(n)])
    assert write_checkpoint(engine, key, now=T0 + timedelta(minutes=1)) is not None
    store.record([_event(n) for n in range(7, 11)])
    assert write_checkpoint(engine, key, now=T0 + timedelta(minutes=2)) is not None
    return engine


def _sql(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def _verify(url: str, key_file: Path) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(
        app, ["verify", "--store-url", url, "--public-key", str(key_file), "-o", "json"]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)["data"]


def _public_key_file(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "checkpoint.pub"
    path.write_text(public_pem(key.public_key()))
    return path


def test_an_intact_log_verifies_with_its_checkpoints(
    signed: Engine, store_url: str, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    assert [c.seq for c in list_checkpoints(signed)] == [5, 10]
    code, verdict = _verify(store_url, _public_key_file(tmp_path, key))
    assert code == 0 and verdict["ok"] is True
    assert (verdict["checked"], verdict["checkpoints"], verdict["last_seq"]) == (11, 2, 11)


def test_nothing_new_means_no_new_checkpoint(signed: Engine, key: Ed25519PrivateKey) -> None:
    assert write_checkpoint(signed, key, now=T0 + timedelta(minutes=3)) is None
    assert len(list_checkpoints(signed)) == 2


@pytest.mark.parametrize(
    ("statements", "bad_seq", "words"),
    [
        (["UPDATE audit_events SET subject = 'mallory' WHERE seq = 3"], 3, "event 3 was edited"),
        (["""UPDATE audit_events SET details = '{"n":3}' WHERE seq = 3"""], 3, "event 3 was edited"),
        (["DELETE FROM audit_events WHERE seq = 4"], 5, "event 4 is missing (deleted)"),
        (
            [
                "UPDATE audit_events SET seq = -1 WHERE seq = 7",
                "UPDATE audit_events SET seq = 7 WHERE seq = 8",
                "UPDATE audit_events SET seq = 8 WHERE seq = -1",
            ],
            7,
            "does not link to event 6",
        ),
        (["DELETE FROM audit_events WHERE seq > 8"], 9, "tail cut: the log ends at seq 8"),
        (
            ["DELETE FROM audit_events WHERE seq > 4", "DELETE FROM audit_checkpoints WHERE seq = 10"],
            5,
            "tail cut: the log ends at seq 4",
        ),
        (["UPDATE audit_checkpoints SET seq = 9 WHERE seq = 10"], 9, "invalid signature"),
    ],
    ids=["edited", "edited-details", "deleted", "reordered", "tail-cut", "tail-and-checkpoint-cut", "forged"],
)
def test_tampering_is_reported_with_the_first_bad_seq(
    signed: Engine,
    store_url: str,
    key: Ed25519PrivateKey,
    tmp_path: Path,
    statements: list[str],
    bad_seq: int,
    words: str,
) -> None:
    _sql(signed, *statements)
    code, verdict = _verify(store_url, _public_key_file(tmp_path, key))
    assert code == EXIT_TAMPERED and verdict["ok"] is False
    assert verdict["first_bad_seq"] == bad_seq
    assert words in str(verdict["message"])


def test_an_edited_time_is_found_even_when_it_reads_back_the_same(
    signed: Engine, store_url: str, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    """SQLite reads '2026-03-01T12:00:03' as the stored '2026-03-01 12:00:03', but filters compare text."""
    if signed.dialect.name == "sqlite":
        edit = "UPDATE audit_events SET at = substr(at, 1, 10) || 'T' || substr(at, 12) WHERE seq = 3"
    else:
        edit = "UPDATE audit_events SET at = at + interval '1 microsecond' WHERE seq = 3"
    _sql(signed, edit)
    code, verdict = _verify(store_url, _public_key_file(tmp_path, key))
    assert (code, verdict["first_bad_seq"]) == (EXIT_TAMPERED, 3), verdict
    assert "event 3 was edited" in str(verdict["message"])


def test_a_rewritten_chain_with_recomputed_hashes_is_caught_by_a_checkpoint(
    signed: Engine, key: Ed25519PrivateKey
) -> None:
    """The attacker edits event 2 and re-hashes 2..11 so every link holds: only the signature can tell."""
    rows = _rows(signed)
    _sql(signed, "DELETE FROM audit_events WHERE seq >= 2")
    prev = rows[0]["hash"]
    for row in rows[1:]:
        forged = AuditEvent(
            action=row["action"],
            actor=row["actor"],
            at=T0 + timedelta(seconds=row["seq"]),
            subject="mallory" if row["seq"] == 2 else row["subject"],
            cluster=row["cluster"],
            details=json.loads(row["details"]),
        )
        sealed = seal(forged, seq=row["seq"], event_id=row["event_id"], prev_hash=prev)
        _insert(signed, sealed.event.to_dict(), sealed.details_json)
        prev = sealed.event.hash
    verdict = verify_log(signed, public_keys=[key.public_key()])
    assert verdict.ok is False and verdict.first_bad_seq == 5
    assert "differs from the checkpoint" in verdict.message
    # Without the key the cut and rewrite checks still run, and the output says what was skipped.
    assert verify_log(signed, public_keys=None).warning.startswith("checkpoint signatures not checked")


def test_the_wrong_key_fails_verification(signed: Engine, store_url: str, tmp_path: Path) -> None:
    other = _public_key_file(tmp_path, Ed25519PrivateKey.generate())
    code, verdict = _verify(store_url, other)
    assert code == EXIT_TAMPERED and "unknown key" in str(verdict["message"])


def test_the_command_names_the_first_bad_seq_and_exits_65(
    signed: Engine, store_url: str, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    _sql(signed, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 7")
    done = _kubejit(
        "audit", "verify", "--store-url", store_url, "--public-key", str(_public_key_file(tmp_path, key))
    )
    assert done.returncode == EXIT_TAMPERED
    assert "TAMPERED: first bad seq 7: event 7 was edited" in done.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--store-url", "sqlite:///{tmp}/nope/kubejit.db"], 78, "no kubejit database at"),
        ([], 2, "which store?"),
        (["--store-url", "mysql://x/y"], 78, "unsupported store URL"),
        (["--store-url", "postgresql://u:s3cret@h:nope/db"], 78, "invalid store URL: invalid literal"),
        (["--store-url", "sqlite:///{tmp}/k.db", "--public-key", "{tmp}/missing.pem"], 78, "cannot read key"),
    ],
    ids=["missing-sqlite", "no-store", "bad-url", "bad-port", "missing-key"],
)
def test_bad_input_is_an_error_without_traceback(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    done = _kubejit("audit", "verify", *(a.format(tmp=tmp_path) for a in args))
    assert done.returncode == code, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr and "s3cret" not in done.stderr
    assert not (tmp_path / "nope").exists()


def _kubejit(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBEJIT_CONFIG", "KUBEJIT_STORE_URL")}
    return subprocess.run([KUBEJIT, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def _rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.exec_driver_sql("SELECT * FROM audit_events ORDER BY seq")
        return [dict(r._mapping) for r in result]


def _insert(engine: Engine, event: dict[str, object], details_json: str) -> None:
    names = (
        "seq",
        "event_id",
        "action",
        "actor",
        "outcome",
        "grant_id",
        "subject",
        "cluster",
        "prev_hash",
        "hash",
    )
    row = {k: event[k] for k in names}
    at = T0 + timedelta(seconds=int(str(event["seq"])))
    with engine.begin() as conn:
        conn.execute(sa.insert(audit_events), {**row, "details": details_json, "at": at})


@pytest.mark.parametrize(
    ("statements", "bad_seq"),
    [
        ([], None),
        (["UPDATE audit_events SET actor = 'mallory' WHERE seq = 8"], 8),
        (["DELETE FROM audit_events WHERE seq = 5"], 6),  # the range boundary itself
    ],
    ids=["intact", "edited-second-range", "deleted-boundary"],
)
def test_parallel_verification_finds_what_one_pass_finds(
    signed: Engine, monkeypatch: pytest.MonkeyPatch, statements: list[str], bad_seq: int | None
) -> None:
    _sql(signed, *statements)
    monkeypatch.setattr(audit_verify, "PARALLEL_FROM", 0)
    one_pass = audit_verify.verify_stored(signed)
    assert audit_verify.verify_parallel(signed, jobs=2) == one_pass
    assert one_pass.first_bad_seq == bad_seq


def test_an_unreadable_config_key_warns_and_still_checks_the_log(
    signed: Engine, store_url: str, tmp_path: Path
) -> None:
    (tmp_path / "brokerdata").mkdir()
    (tmp_path / "brokerdata" / "audit-checkpoint-key.pem").write_text("not a key")
    (tmp_path / "policy.yaml").write_text("rules: []\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "store": {"url": store_url},
                "dataDir": str(tmp_path / "brokerdata"),
                "policyFile": "policy.yaml",
                "clusters": [{"name": "dev", "kubeconfig": "kc", "audience": "a"}],
            }
        )
    )
    _sql(signed, "DELETE FROM audit_events WHERE seq > 8")
    done = _kubejit("audit", "verify", "--config", str(config), "-o", "json")
    assert done.returncode == EXIT_TAMPERED, done.stderr
    assert "is not a readable PEM key; pass --public-key" in done.stderr
    verdict = json.loads(done.stdout)["data"]
    assert verdict["first_bad_seq"] == 9 and verdict["warning"].startswith(
        "checkpoint signatures not checked"
    )


# -- a log cut back to an older checkpoint -----------------------------------------------------------
@pytest.fixture
def recent(engine: Engine, key: Ed25519PrivateKey) -> Engine:
    """Like ``signed``, but signed just now: checkpoint at 5 an hour ago, at 10 (event 11) a second ago."""
    now = datetime.now(UTC)
    store = SqlAuditStore(engine)
    for n in range(1, 6):
        store.record([_event(n)])
    assert write_checkpoint(engine, key, now=now - timedelta(hours=1)) is not None
    store.record([_event(n) for n in range(7, 11)])
    assert write_checkpoint(engine, key, now=now - timedelta(seconds=1)) is not None
    return engine


def _verify_with(url: str, key_file: Path, *args: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(
        app, ["verify", "--store-url", url, "--public-key", str(key_file), "-o", "json", *args]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)["data"]


def test_a_log_cut_back_to_an_older_checkpoint_warns_and_fails_against_the_recorded_head(
    recent: Engine, store_url: str, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    public = _public_key_file(tmp_path, key)
    code, fresh = _verify_with(store_url, public)
    assert code == 0 and fresh["ok"] is True and fresh["warning"] == "", fresh
    head = f"{fresh['last_seq']}:{fresh['head_hash']}"
    assert _verify_with(store_url, public, "--expect-head", head)[0] == 0

    # The attacker deletes the newest events and the checkpoint that covered them.
    _sql(recent, "DELETE FROM audit_events WHERE seq > 6", "DELETE FROM audit_checkpoints WHERE seq = 10")
    code, cut = _verify_with(store_url, public)
    assert code == 0 and cut["ok"] is True and cut["last_seq"] == 6  # every remaining checkpoint agrees
    assert "newest signed checkpoint (seq 5)" in str(cut["warning"]) and "1h ago" in str(cut["warning"])

    for expected in (head, "11"):
        code, verdict = _verify_with(store_url, public, "--expect-head", expected)
        assert code == EXIT_TAMPERED and verdict["ok"] is False, verdict
        assert verdict["first_bad_seq"] == 7
        assert str(verdict["message"]).startswith(
            "tail cut: the log ends at seq 6, but its head was recorded"
        )

    done = _kubejit("audit", "verify", "--store-url", store_url, "--public-key", str(public))
    assert done.returncode == 0 and "warning" in done.stdout and "--expect-head" in done.stdout


def test_an_expected_head_whose_hash_differs_is_a_rewrite(
    recent: Engine, store_url: str, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    code, verdict = _verify_with(store_url, _public_key_file(tmp_path, key), "--expect-head", f"9:{'0' * 64}")
    assert code == EXIT_TAMPERED and verdict["first_bad_seq"] == 9
    assert "event 9 differs from the head recorded for it" in str(verdict["message"])


@pytest.mark.parametrize("value", ["abc", "0", "5:xyz", f"5:{'a' * 63}", "5:"])
def test_a_malformed_expected_head_is_refused_before_the_store_is_read(tmp_path: Path, value: str) -> None:
    db = tmp_path / "nope" / "kubejit.db"
    done = _kubejit("audit", "verify", "--store-url", f"sqlite:///{db}", "--expect-head", value)
    assert done.returncode == 2, done.stderr
    assert "is not SEQ or SEQ:HASH" in done.stderr and "Traceback" not in done.stderr
    assert not db.parent.exists()
