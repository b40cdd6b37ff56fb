"""Signed checkpoints: what is signed, what a verifier accepts, and what a cut or rewrite looks like."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kubejit.audit.checkpoint import (
    Checkpoint,
    ExpectedHead,
    check,
    check_expected_head,
    key_id,
    load_or_create_signing_key,
    load_public_key,
    load_signing_key,
    public_pem,
    sign,
    signature_valid,
    signed_message,
    stale_warning,
)
from kubejit.errors import ConfigError

pytestmark = pytest.mark.unit

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
KEYS = {key_id(KEY.public_key()): KEY.public_key()}


def test_the_signed_message_is_versioned_and_names_seq_hash_and_time() -> None:
    assert signed_message(7, "ab" * 32, AT) == (
        b"kubejit-audit-checkpoint/v1\n7\n" + b"ab" * 32 + b"\n2026-03-01T12:00:00.000000Z\n"
    )


def test_a_signature_verifies_only_unchanged_and_with_the_right_key() -> None:
    cp = sign(KEY, seq=7, digest="a" * 64, at=AT)
    assert signature_valid(cp, KEYS)
    assert not signature_valid(replace(cp, seq=8), KEYS)
    assert not signature_valid(replace(cp, hash="b" * 64), KEYS)
    assert not signature_valid(replace(cp, signature="not base64!"), KEYS)
    other = Ed25519PrivateKey.generate().public_key()
    assert not signature_valid(cp, {key_id(other): other})


def test_check_finds_a_cut_tail_a_rewrite_and_a_forgery_in_seq_order() -> None:
    cps = [sign(KEY, seq=s, digest=f"{s:064x}", at=AT) for s in (5, 10)]
    intact = {5: f"{5:064x}", 10: f"{10:064x}"}
    assert check(cps, stored_hashes=intact, end_seq=12, keys=KEYS) is None

    cut = check(cps, stored_hashes={5: intact[5], 10: None}, end_seq=8, keys=KEYS)
    assert cut is not None and cut.seq == 9 and cut.message.startswith("tail cut: the log ends at seq 8")

    rewritten = check(cps, stored_hashes={5: "f" * 64, 10: intact[10]}, end_seq=12, keys=KEYS)
    assert rewritten is not None and rewritten.seq == 5 and "rewritten" in rewritten.message

    forged = [cps[0], replace(cps[1], seq=11)]
    found = check(forged, stored_hashes={5: intact[5], 11: "x"}, end_seq=12, keys=KEYS)
    assert found is not None and found.seq == 11 and "invalid signature" in found.message
    # Without keys a forged signature goes unnoticed, but the cut still shows.
    assert check(forged, stored_hashes={5: intact[5], 11: "x"}, end_seq=12, keys=None) is not None
    assert check(cps, stored_hashes={5: intact[5], 10: None}, end_seq=8, keys=None) is not None


def test_the_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "d" / "key.pem"
    key = load_or_create_signing_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = load_or_create_signing_key(path)
    assert key_id(again.public_key()) == key_id(key.public_key())
    public = tmp_path / "key.pub"
    public.write_text(public_pem(key.public_key()))
    assert key_id(load_public_key(public)) == key_id(load_public_key(path)) == key_id(key.public_key())


@pytest.mark.parametrize(
    "content", [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_unreadable_keys_are_config_errors_that_never_echo_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_public_key(path)
    assert "AAAA" not in err.value.message and str(path) in err.value.message
    with pytest.raises(ConfigError):
        load_signing_key(path)


def test_a_missing_key_or_a_public_key_as_signing_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read key"):
        load_public_key(tmp_path / "missing.pem")
    public = tmp_path / "key.pub"
    public.write_text(public_pem(KEY.public_key()))
    with pytest.raises(ConfigError):
        load_signing_key(public)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_signing_key_open_to_others_is_refused_until_chmod_600(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "key.pem"
    key = load_or_create_signing_key(path)
    os.chmod(path, mode)
    with pytest.raises(ConfigError) as err:
        load_or_create_signing_key(path)
    assert f"(mode {mode:04o})" in err.value.message and f"chmod 600 {path}" in (err.value.hint or "")
    os.chmod(path, 0o600)
    assert key_id(load_or_create_signing_key(path).public_key()) == key_id(key.public_key())


def _checkpoint_at(seq: int, at: datetime) -> Checkpoint:
    return Checkpoint(seq, "h" * 64, at, "k", "s")


def test_a_newest_checkpoint_older_than_five_intervals_is_warned_about() -> None:
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    checkpoints = [_checkpoint_at(5, at - timedelta(hours=1)), _checkpoint_at(10, at)]
    minute = timedelta(minutes=1)
    assert stale_warning(checkpoints, now=at + 5 * minute, interval=minute) == ""
    warning = stale_warning(checkpoints, now=at + 5 * minute + timedelta(seconds=1), interval=minute)
    assert "newest signed checkpoint (seq 10)" in warning and "5m ago" in warning
    assert stale_warning([], now=at, interval=minute) == ""  # "no checkpoints yet" is said elsewhere


def test_an_expected_head_must_be_reached_and_match() -> None:
    digest = "a" * 64
    assert check_expected_head(ExpectedHead(10, digest), end_seq=12, stored_hash=digest) is None
    assert check_expected_head(ExpectedHead(10), end_seq=10, stored_hash="b" * 64) is None
    behind = check_expected_head(ExpectedHead(10), end_seq=6, stored_hash=None)
    assert behind is not None and behind.seq == 7 and "tail cut: the log ends at seq 6" in behind.message
    rewritten = check_expected_head(ExpectedHead(10, digest), end_seq=12, stored_hash="b" * 64)
    assert rewritten is not None and rewritten.seq == 10 and "rewritten" in rewritten.message
