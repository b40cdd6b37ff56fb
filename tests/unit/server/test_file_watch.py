from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from kubejit.server.file_watch import ContentWatch, digest

pytestmark = pytest.mark.unit


def test_a_symlink_swap_is_a_change_and_an_unreadable_file_is_not(tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "p.yaml").write_text("one")
    (tmp_path / "..data").symlink_to("v1")
    link = tmp_path / "p.yaml"
    link.symlink_to("..data/p.yaml")
    watch = ContentWatch([link], current=digest([b"one"]))
    assert watch.changed() is None

    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "p.yaml").write_text("two")
    (tmp_path / "staged").symlink_to("v2")
    os.replace(tmp_path / "staged", tmp_path / "..data")  # what the kubelet does; the link never changes
    assert watch.changed() == (hashlib.sha256(b"two").hexdigest(), (b"two",))
    assert watch.changed() is None  # reported once

    (tmp_path / "v2" / "p.yaml").unlink()
    assert watch.changed() is None  # mid-update: look again later
    (tmp_path / "v2" / "p.yaml").write_text("two")
    assert watch.changed() is None  # back as it was: nothing to do


def test_several_files_have_one_digest_that_tells_them_apart() -> None:
    assert digest([b"ab", b"c"]) != digest([b"a", b"bc"])
    assert digest([b"x"]) == hashlib.sha256(b"x").hexdigest()
