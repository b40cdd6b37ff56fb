"""kubejit as a JWT issuer for clusters: keys on disk, rotation with overlap, the tokens' claims."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError
from joserfc.jwk import ECKey, KeySet

from kubejit.clock import FixedClock
from kubejit.errors import ConfigError
from kubejit.identity.cluster_keys import PUBLISH_LEEWAY_SECONDS, ClusterKeyRing
from kubejit.identity.cluster_tokens import ClusterTokenIssuer, grant_group

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LIFETIME = 300


def ring(directory: Path, clock: FixedClock, *, rotate_after: float = 86400) -> ClusterKeyRing:
    return ClusterKeyRing(directory, clock=clock, overlap_seconds=LIFETIME, rotate_after_seconds=rotate_after)


def issuer(keys: ClusterKeyRing, clock: FixedClock) -> ClusterTokenIssuer:
    return ClusterTokenIssuer(
        issuer_url="https://broker.example/k8s", keys=keys, lifetime_seconds=LIFETIME, clock=clock
    )


def verify(token: str, keys: ClusterKeyRing) -> dict[str, object]:
    """As the API server would: against the published JWKS only."""
    key_set = KeySet.import_key_set(keys.jwks())  # type: ignore[arg-type]
    return dict(jwt.decode(token, key_set, algorithms=["ES256"]).claims)


def test_a_key_is_created_once_0600_and_kept_across_restarts(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    first = ring(tmp_path / "keys", clock)
    (only,) = list((tmp_path / "keys").iterdir())
    assert stat.S_IMODE(only.stat().st_mode) == 0o600
    again = ring(tmp_path / "keys", clock)
    assert again.signing_key().kid == first.signing_key().kid


def test_a_key_others_may_read_is_refused(tmp_path: Path) -> None:
    ring(tmp_path / "keys", FixedClock(T0))
    (only,) = list((tmp_path / "keys").iterdir())
    os.chmod(only, 0o644)
    with pytest.raises(ConfigError, match="0600"):
        ring(tmp_path / "keys", FixedClock(T0))


def test_a_file_that_is_no_key_is_refused_by_name(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    bogus = keys / "1767268800-0123456789abcdef.pem"
    bogus.write_bytes(b"not a key")
    os.chmod(bogus, 0o600)
    with pytest.raises(ConfigError, match=r"1767268800-0123456789abcdef\.pem is not"):
        ring(keys, FixedClock(T0))


def test_the_jwks_holds_public_halves_only(tmp_path: Path) -> None:
    published = ring(tmp_path / "keys", FixedClock(T0)).jwks()["keys"]
    assert len(published) == 1
    assert "d" not in published[0]
    assert published[0]["alg"] == "ES256" and published[0]["use"] == "sig" and published[0]["crv"] == "P-256"


def test_token_claims_name_the_person_one_cluster_and_only_the_grant_group(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    keys = ring(tmp_path / "keys", clock)
    minted = issuer(keys, clock).mint(
        subject="corp:alice@example.com", grant_id="g1a2b3c", audience="https://prod", not_after=None
    )
    claims = verify(minted.token, keys)
    now = int(T0.timestamp())
    assert claims == {
        "iss": "https://broker.example/k8s",
        "aud": "https://prod",
        "sub": "corp:alice@example.com",
        "groups": ["kubejit:grant:g1a2b3c"],
        "iat": now,
        "nbf": now,
        "exp": now + LIFETIME,
        "jti": minted.jti,
    }
    assert minted.expires_at == T0 + timedelta(seconds=LIFETIME)
    assert grant_group("g1a2b3c") == "kubejit:grant:g1a2b3c"


def test_a_token_never_outlives_its_grant(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    minted = issuer(ring(tmp_path / "keys", clock), clock).mint(
        subject="alice", grant_id="g1", audience="a", not_after=T0 + timedelta(seconds=42)
    )
    assert minted.expires_at == T0 + timedelta(seconds=42)


def test_each_token_has_its_own_jti(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    mint = issuer(ring(tmp_path / "keys", clock), clock)
    jtis = {mint.mint(subject="a", grant_id="g1", audience="a", not_after=None).jti for _ in range(20)}
    assert len(jtis) == 20


def test_rotation_keeps_the_old_key_published_until_its_last_token_expired(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    keys = ring(tmp_path / "keys", clock)
    mint = issuer(keys, clock)
    old_token = mint.mint(subject="a", grant_id="g1", audience="a", not_after=None).token
    old_kid = keys.signing_key().kid
    clock.advance(timedelta(seconds=10))
    new_kid = keys.rotate().kid
    assert new_kid != old_kid
    new_token = mint.mint(subject="a", grant_id="g1", audience="a", not_after=None).token
    assert jwt.decode(new_token, KeySet.import_key_set(keys.jwks())).header["kid"] == new_kid  # type: ignore[arg-type]
    # The old token verifies against the JWKS until it has certainly expired...
    clock.advance(timedelta(seconds=LIFETIME + PUBLISH_LEEWAY_SECONDS - 1))
    assert {k["kid"] for k in keys.jwks()["keys"]} == {old_kid, new_kid}
    verify(new_token, keys)
    # ...and then the old key is gone from it, and pruned from disk.
    clock.advance(timedelta(seconds=1))
    assert {k["kid"] for k in keys.jwks()["keys"]} == {new_kid}
    assert keys.prune() == [old_kid]
    assert len(list((tmp_path / "keys").iterdir())) == 1
    with pytest.raises(InvalidKeyIdError):
        verify(old_token, keys)


def test_the_signing_key_rotates_on_its_own_after_the_interval(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    keys = ring(tmp_path / "keys", clock, rotate_after=3600)
    first = keys.signing_key().kid
    clock.advance(timedelta(seconds=3599))
    assert keys.signing_key().kid == first
    clock.advance(timedelta(seconds=1))
    assert keys.signing_key().kid != first
    assert len(keys.jwks()["keys"]) == 2


def test_another_replica_sees_a_rotation_through_the_directory(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    one, two = ring(tmp_path / "keys", clock), ring(tmp_path / "keys", clock)
    clock.advance(timedelta(seconds=5))
    rotated = one.rotate().kid
    assert two.signing_key().kid == rotated


def test_a_token_signed_by_another_key_fails_verification(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    keys = ring(tmp_path / "keys", clock)
    stranger = ECKey.generate_key("P-256", parameters={"kid": keys.signing_key().kid}, private=True)
    forged = jwt.encode({"alg": "ES256", "kid": stranger.kid}, {"sub": "mallory"}, stranger)
    with pytest.raises(BadSignatureError):
        verify(forged, keys)


def test_discovery_points_at_the_jwks(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    document = issuer(ring(tmp_path / "keys", clock), clock).discovery()
    assert document["issuer"] == "https://broker.example/k8s"
    assert document["jwks_uri"] == "https://broker.example/k8s/jwks"
    assert document["id_token_signing_alg_values_supported"] == ["ES256"]
