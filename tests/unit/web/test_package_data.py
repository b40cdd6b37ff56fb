"""The pages' templates and static files ship in the wheel: each matches a package-data glob."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

import kubejit
from kubejit.web.render import HTMX_VERSION, STATIC, TEMPLATES

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def test_every_template_and_static_file_is_package_data() -> None:
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "kubejit"
    ]
    package = Path(kubejit.__file__).parent
    files = [p for folder in (TEMPLATES, STATIC) for p in folder.rglob("*") if p.is_file()]
    assert files
    missing = [
        str(p.relative_to(package))
        for p in files
        if not any(fnmatch.fnmatch(str(p.relative_to(package)), g) for g in globs)
    ]
    assert missing == []


def test_the_vendored_htmx_is_the_version_noted_with_its_licence() -> None:
    assert f'version:"{HTMX_VERSION}"' in (STATIC / "htmx.min.js").read_text().replace(" ", "")
    assert "Zero-Clause BSD" in (STATIC / "htmx.LICENSE").read_text()
    assert HTMX_VERSION in (STATIC / "VENDORED.md").read_text()
