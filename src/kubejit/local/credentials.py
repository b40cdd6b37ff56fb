"""Where the CLI keeps OIDC refresh tokens: the OS keyring when one works, else a 0600 file.

A refresh token outlives the ID token by days, so it is the most valuable secret the CLI holds. The
``keyring`` package (optional: ``pip install keyring``) reaches macOS Keychain, Windows Credential
Locker and the Secret Service on Linux desktops; on a headless machine it has no backend and the file
``~/.config/kubejit/refresh-tokens.json`` (mode 0600, directory 0700) is used instead.
``KUBEJIT_KEYRING=0`` forces the file.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

from kubejit.local.private_files import write_private

SERVICE = "kubejit"


def _keyring() -> Any:
    if os.environ.get("KUBEJIT_KEYRING", "1") == "0":
        return None
    try:  # optional dependency, not a hard one: imported by name
        keyring = importlib.import_module("keyring")
        fail_backend = importlib.import_module("keyring.backends.fail").Keyring
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # a broken backend configuration: fall back rather than fail a login
        return None
    if isinstance(backend, fail_backend) or getattr(backend, "priority", 1) <= 0:
        return None
    return keyring


def _file() -> Path:
    from kubejit.local.session import config_dir

    return config_dir() / "refresh-tokens.json"


def _read_file() -> dict[str, str]:
    try:
        data = json.loads(_file().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_file(data: dict[str, str]) -> None:
    path = _file()
    if not data:
        path.unlink(missing_ok=True)
        return
    write_private(str(path), json.dumps(data))


def store(key: str, refresh_token: str) -> str:
    """Keep ``refresh_token`` under ``key`` (broker + issuer); returns where: "keyring" or the file path."""
    ring = _keyring()
    if ring is not None:
        try:
            ring.set_password(SERVICE, key, refresh_token)
            return "OS keyring"
        except Exception:  # locked or refusing keyring: the file is the documented fallback
            pass
    data = _read_file()
    data[key] = refresh_token
    _write_file(data)
    return str(_file())


def load(key: str) -> str | None:
    ring = _keyring()
    if ring is not None:
        try:
            found = ring.get_password(SERVICE, key)
        except Exception:
            found = None
        if found:
            return str(found)
    return _read_file().get(key)


def forget(key: str) -> bool:
    removed = False
    ring = _keyring()
    if ring is not None:
        try:
            ring.delete_password(SERVICE, key)
            removed = True
        except Exception:  # not there
            pass
    data = _read_file()
    if data.pop(key, None) is not None:
        removed = True
        _write_file(data)
    return removed
