"""The ``web:`` settings: defaults, an unknown sign-in issuer refused, paths relative to the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kubejit.config import parse_settings
from kubejit.errors import ConfigError

pytestmark = pytest.mark.unit

BASE = """\
clusters:
  - name: dev
    kubeconfig: kube/dev.yaml
    audience: https://dev.kubejit.local
policyFile: policy.yaml
identity:
  issuers:
    - name: corp
      issuerUrl: https://idp.example.com
      audience: kubejit
"""


def test_defaults(tmp_path: Path) -> None:
    web = parse_settings(BASE, source="c.yaml", base_dir=tmp_path).web
    assert web.enabled and web.issuer is None and web.client_id is None
    assert web.session_idle_minutes == 30 and web.session_max_hours == 12


def test_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    text = BASE + "web:\n  issuer: corp\n  clientId: kubejit-web\n  clientSecretFile: secret\n"
    web = parse_settings(text, source="c.yaml", base_dir=tmp_path).web
    assert web.client_secret_file == tmp_path / "secret" and web.client_id == "kubejit-web"


@pytest.mark.parametrize(
    ("web", "message"),
    [
        ("  issuer: okta\n", "no identity issuer is named 'okta' (known: corp)"),
        ("  issuer: dev\n", "no identity issuer is named 'dev'"),
        ("  sessionIdleMinutes: 0\n", "sessionIdleMinutes"),
        ("  sessionMaxHours: 1000\n", "sessionMaxHours"),
        ("  cookieName: x\n", "cookieName"),
    ],
)
def test_bad_web_settings_are_refused(tmp_path: Path, web: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_settings(BASE + "web:\n" + web, source="c.yaml", base_dir=tmp_path)
