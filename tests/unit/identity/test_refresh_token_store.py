"""Refresh tokens without a keyring: a 0600 file in a 0700 directory, removed on logout."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kubejit.local import credentials, session

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEJIT_KEYRING", "0")


def test_file_fallback_is_private_and_keyed(isolated_home: Path) -> None:
    where = credentials.store("http://b|https://idp", "rt-1")
    credentials.store("http://b|https://other", "rt-2")
    path = Path(where)
    assert path == isolated_home / ".config" / "kubejit" / "refresh-tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert credentials.load("http://b|https://idp") == "rt-1"
    assert credentials.load("http://b|https://nowhere") is None


def test_forget_removes_the_entry_and_then_the_file(isolated_home: Path) -> None:
    credentials.store("k1", "a")
    credentials.store("k2", "b")
    assert credentials.forget("k1") and credentials.load("k1") is None and credentials.load("k2") == "b"
    assert credentials.forget("k2")
    assert not (isolated_home / ".config" / "kubejit" / "refresh-tokens.json").exists()
    assert not credentials.forget("k2")


def test_a_corrupt_file_reads_as_empty(isolated_home: Path) -> None:
    path = isolated_home / ".config" / "kubejit" / "refresh-tokens.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert credentials.load("k") is None
    credentials.store("k", "v")
    assert credentials.load("k") == "v"


def test_processes_renewing_at_once_do_not_trip_over_each_other(isolated_home: Path) -> None:
    """Parallel kubectl calls each run the plugin, and each may renew the login: every save must land."""
    script = (
        "from kubejit.local import credentials, session\n"
        "s = session.Session(broker='http://b', token='t' * 2000, user='u')\n"
        "for _ in range(300):\n"
        "    session.save(s)\n"
        "    credentials.store('k', 'rt')\n"
    )
    runs = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE) for _ in range(3)]
    errors = [run.communicate()[1].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], errors
    assert session.load() == session.Session(broker="http://b", token="t" * 2000, user="u")
    assert sorted(p.name for p in (isolated_home / ".config" / "kubejit").iterdir()) == [
        "refresh-tokens.json",
        "session.json",
    ]
