"""Signed checkpoints of the audit chain: Ed25519 signatures over (seq, hash, time).

A hash chain shows an edit, a deletion in the middle or a reordering, but not a cut tail: the
shorter chain is still a valid chain. A checkpoint signed with a key the database does not hold
says "the log had reached event ``seq`` with hash ``hash`` at ``at``"; a log that ends before a
checkpoint, or differs from it, was cut or rewritten. Pure apart from reading/creating a key file.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kubejit.audit.event import rfc3339
from kubejit.checks import read_private_file
from kubejit.errors import ConfigError

#: The action of the chained event that copies each checkpoint into the log (and so to the sinks).
CHECKPOINT_ACTION = "audit.checkpoint"
#: A running broker that writes events signs a checkpoint every interval: a newest checkpoint older
#: than this many intervals means an idle broker, or newer events cut together with their checkpoints.
STALE_AFTER_INTERVALS = 5


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: datetime
    key_id: str
    signature: str  # base64 of the 64-byte Ed25519 signature

    def message(self) -> bytes:
        return signed_message(self.seq, self.hash, self.at)


def signed_message(seq: int, digest: str, at: datetime) -> bytes:
    """The exact bytes signed: versioned, so the format can change without ambiguity."""
    return f"kubejit-audit-checkpoint/v1\n{seq}\n{digest}\n{rfc3339(at)}\n".encode()


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name for a public key (sha256 of its raw bytes), stored with each checkpoint."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(key: Ed25519PrivateKey, *, seq: int, digest: str, at: datetime) -> Checkpoint:
    signature = key.sign(signed_message(seq, digest, at))
    return Checkpoint(seq, digest, at, key_id(key.public_key()), base64.b64encode(signature).decode())


def signature_valid(checkpoint: Checkpoint, keys: Mapping[str, Ed25519PublicKey]) -> bool:
    public = keys.get(checkpoint.key_id)
    if public is None:
        return False
    try:
        public.verify(base64.b64decode(checkpoint.signature, validate=True), checkpoint.message())
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class CheckpointProblem:
    seq: int
    message: str


def check(
    checkpoints: Iterable[Checkpoint],
    *,
    stored_hashes: Mapping[int, str | None],
    end_seq: int,
    keys: Mapping[str, Ed25519PublicKey] | None,
) -> CheckpointProblem | None:
    """The first checkpoint the stored log contradicts, or None.

    ``stored_hashes`` maps each checkpoint's seq to the hash stored there (None: no such row);
    ``end_seq`` is the highest seq stored. ``keys=None`` skips the signatures (weaker:
    say so to the user), still catching a tail cut by someone who left the checkpoints alone.
    """
    for cp in sorted(checkpoints, key=lambda c: c.seq):
        if keys is not None and not signature_valid(cp, keys):
            known = ", ".join(sorted(keys)) or "none"
            return CheckpointProblem(
                cp.seq,
                f"checkpoint at seq {cp.seq} has an invalid signature or an unknown key "
                f"{cp.key_id} (known: {known}): the checkpoint table was forged or the wrong key is given",
            )
        if cp.seq > end_seq:
            return CheckpointProblem(
                end_seq + 1,
                f"tail cut: the log ends at seq {end_seq}, but a checkpoint signed at {rfc3339(cp.at)} "
                f"shows it had reached seq {cp.seq}; events {end_seq + 1}..{cp.seq} (at least) are gone",
            )
        if stored_hashes.get(cp.seq) != cp.hash:
            return CheckpointProblem(
                cp.seq,
                f"event {cp.seq} differs from the checkpoint signed at {rfc3339(cp.at)}: "
                "the log was rewritten (hashes recomputed) at or before this event",
            )
    return None


def stale_warning(checkpoints: Iterable[Checkpoint], *, now: datetime, interval: timedelta) -> str:
    """A warning when the newest checkpoint is older than ``STALE_AFTER_INTERVALS`` intervals, else "".

    Cutting the log back to an older checkpoint (events and the newer checkpoints deleted) leaves a
    log that agrees with every remaining checkpoint; only its age, or a head recorded elsewhere
    (``check_expected_head``), shows it. An idle broker signs nothing new either, so this warns.
    """
    newest = max(checkpoints, key=lambda c: c.seq, default=None)
    if newest is None or now - newest.at <= interval * STALE_AFTER_INTERVALS:
        return ""
    age = _age(now - newest.at)
    return (
        f"the newest signed checkpoint (seq {newest.seq}) is from {rfc3339(newest.at)}, {age} ago, more "
        f"than {STALE_AFTER_INTERVALS} checkpoint intervals: if the broker wrote events since, they may "
        "have been cut together with their checkpoints; compare with the newest audit.checkpoint event "
        "your sinks received, or pass --expect-head SEQ:HASH"
    )


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class ExpectedHead:
    """A head the operator recorded (from an earlier verify or a sink): the log must have reached it."""

    seq: int
    hash: str | None = None


def check_expected_head(
    expected: ExpectedHead, *, end_seq: int, stored_hash: str | None
) -> CheckpointProblem | None:
    """The log must reach ``expected.seq`` and, when a hash was recorded, hold that hash there."""
    if end_seq < expected.seq:
        return CheckpointProblem(
            end_seq + 1,
            f"tail cut: the log ends at seq {end_seq}, but its head was recorded at seq {expected.seq} "
            f"(--expect-head); events {end_seq + 1}..{expected.seq} (at least) are gone",
        )
    if expected.hash is not None and stored_hash != expected.hash:
        return CheckpointProblem(
            expected.seq,
            f"event {expected.seq} differs from the head recorded for it (--expect-head): "
            "the log was rewritten at or before this event",
        )
    return None


# -- the key file ----------------------------------------------------------------------------------
def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The broker's checkpoint key (PEM, PKCS#8, mode 0600), created on first start; never logged."""
    try:
        if path.exists():
            return load_signing_key(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        return key
    except OSError as exc:
        raise ConfigError(
            f"audit checkpoint key {path}: {exc.strerror or exc}",
            hint="Check the path in audit.checkpointKeyFile and the directory's permissions.",
        ) from exc


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The broker's own key: refused (ConfigError) when group or others may read it."""
    try:
        data = read_private_file(path, what="audit checkpoint key")
    except OSError as exc:
        raise ConfigError(f"cannot read key {path}: {exc.strerror or exc}", hint=_KEY_HINT) from exc
    key = _load_pem(path, private=True, data=data)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 private key", hint=_KEY_HINT)
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key file, or the public half of a private key file (the broker's own)."""
    key = _load_pem(path, private=None)
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 key", hint=_KEY_HINT)
    return key


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


_KEY_HINT = "Create one with `openssl genpkey -algorithm ed25519 -out key.pem` (or let the broker do it)."


def _load_pem(path: Path, *, private: bool | None, data: bytes | None = None) -> object:
    try:
        data = path.read_bytes() if data is None else data
    except OSError as exc:
        raise ConfigError(f"cannot read key {path}: {exc.strerror or exc}", hint=_KEY_HINT) from exc
    try:
        if private is not False and b"PRIVATE KEY" in data:
            return serialization.load_pem_private_key(data, password=None)
        if private:
            raise ValueError("no private key in the file")
        return serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        # The message names the file, never its content.
        raise ConfigError(f"{path} is not a readable PEM key", hint=_KEY_HINT) from exc
