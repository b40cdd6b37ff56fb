"""The dev issuer's signing key: created 0600, and refused when group or others may read it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kubejit.errors import ConfigError
from kubejit.identity.dev_issuer import load_or_create_key

pytestmark = pytest.mark.unit


def test_the_key_is_created_0600_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "data" / "dev-issuer-key.pem"
    key = load_or_create_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_key(path).thumbprint() == key.thumbprint()


def test_a_key_others_may_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "dev-issuer-key.pem"
    load_or_create_key(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError) as err:
        load_or_create_key(path)
    assert "dev issuer key" in err.value.message and "(mode 0644)" in err.value.message
    assert f"chmod 600 {path}" in (err.value.hint or "")
    assert "PRIVATE" not in err.value.message
