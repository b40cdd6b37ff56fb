"""People log in through a real OIDC provider (Dex, as a process) and policy sees them by their groups.

The test plays the person's browser at Dex (``DexBrowser``): the verification page, the login form
or the authenticating proxy, the "Grant Access" screen. The CLI runs as a real process.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubejit.testing.dex import ALICE, BROKER_CLIENT, CLI_CLIENT, CLI_SCOPES, Dex, DexBrowser, ProxyUser
from tests.broker_identity import BrokerIdentity
from tests.broker_process import KUBEJIT, Broker

pytestmark = pytest.mark.e2e

POLICY = """
roles:
  view: {clusterRole: view}
  edit: {clusterRole: edit}
adminGroups: [dex:platform-admins]
rules:
  - name: developers-edit
    groups: [dex:developers]
    clusters: ["*"]
    namespaces: ["e2e-*"]
    roles: [view, edit]
    duration: {default: 1h, max: 4h}
    approval: auto
"""
CAROL = ProxyUser("carol", ("developers",), email="carol@example.com")
ROOT = ProxyUser("root", ("platform-admins",), email="root@example.com")


@pytest.fixture(scope="module")
def dex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dex]:
    with Dex(tmp_path_factory.mktemp("dex")) as running:
        yield running


@pytest.fixture
def oidc_broker(
    tmp_path: Path, dex: Dex, broker_identity: BrokerIdentity, second_broker_identity: BrokerIdentity
) -> Iterator[Broker]:
    """The e2e broker, trusting Dex (and not its dev issuer: the two are refused together)."""
    issuer = {
        "name": "dex",
        "issuerUrl": dex.issuer,
        "audience": BROKER_CLIENT,
        "usernameClaim": "email",
        "login": {"clientId": CLI_CLIENT, "scopes": CLI_SCOPES, "redirectHost": "localhost"},
    }
    running = Broker(
        tmp_path / "broker",
        [broker_identity, second_broker_identity],
        policy=POLICY,
        extra_config={"identity": {"issuers": [issuer]}, "devIssuer": {"enabled": False}},
    )
    running.workdir.mkdir()
    running.start()
    yield running
    running.stop()


def _start_cli(broker: Broker, person: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [KUBEJIT, *args],
        env=broker.env_for(person),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until(proc: subprocess.Popen[str], pattern: str) -> re.Match[str]:
    """Read the CLI's output line by line until ``pattern`` shows up (bounded by the process ending)."""
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(f"{pattern!r} never appeared; output:\n{''.join(seen)}")


def _finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return out


def device_login(broker: Broker, dex: Dex, person: str, **who: Any) -> str:
    proc = _start_cli(broker, person, "login", "--device")
    try:
        code = _read_until(proc, r"enter the code ([A-Z0-9-]+)").group(1)
        page = DexBrowser(dex).approve_device(code, **who)
        assert "Login Successful" in page
        return _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_device_login_then_request_with_group_policy(
    oidc_broker: Broker, dex: Dex, namespaces: Any, broker_identity: BrokerIdentity
) -> None:
    out = device_login(oidc_broker, dex, "carol", proxy_user=CAROL)
    assert "as dex:carol@example.com via dex" in out and "groups: dex:developers" in out

    me = oidc_broker.json("carol", "whoami")
    assert (me["name"], me["groups"], me["issuer"]) == ("dex:carol@example.com", ["dex:developers"], "dex")
    assert any(line.startswith("developers-edit:") for line in me["may_request"])

    plane = broker_identity.plane
    (namespace,) = namespaces(plane, 1)
    grant = oidc_broker.json(
        "carol", "request", "-c", plane.name, "-n", namespace, "-r", "edit", "--reason", "oidc e2e"
    )
    assert (grant["state"], grant["requester"], grant["rule"]) == (
        "active",
        "dex:carol@example.com",
        "developers-edit",
    )

    # Alice signs in with her password at Dex's own form: a real person, but in no group policy names.
    out = device_login(oidc_broker, dex, "alice", user=ALICE)
    assert "as dex:alice@example.com via dex" in out
    assert oidc_broker.json("alice", "whoami")["groups"] == []
    refused = oidc_broker.cli(
        "alice", "request", "-c", plane.name, "-n", namespace, "-r", "edit", "--reason", "x", check=False
    )
    assert refused.returncode == 3, refused.stderr + refused.stdout
    assert "no rule allows dex:alice@example.com the role 'edit'" in refused.stderr

    # Accounting: both people are known, with the grant carol holds; only admins may list them.
    device_login(oidc_broker, dex, "root", proxy_user=ROOT)
    people = {p["username"]: p for p in oidc_broker.json("root", "users")}
    assert people["dex:carol@example.com"]["active_grants"] == [grant["id"]]
    assert people["dex:alice@example.com"]["issuer"] == "dex"
    assert people["dex:alice@example.com"]["active_grants"] == []
    forbidden = oidc_broker.cli("carol", "users", check=False)
    assert forbidden.returncode == 3 and "only admins" in forbidden.stderr


def test_browser_login_with_pkce_refresh_and_logout(oidc_broker: Broker, dex: Dex) -> None:
    proc = _start_cli(oidc_broker, "alice", "login", "--no-browser")
    try:
        url = _read_until(proc, r"^(http\S+/auth\?\S+)$").group(1)
        assert "code_challenge_method=S256" in url
        callback = DexBrowser(dex).authorize(url, user=ALICE)
        assert callback.startswith("http://localhost:") and "code=" in callback
        landing = httpx.get(callback.replace("localhost", "127.0.0.1", 1), timeout=10)
        assert "login complete" in landing.text
        out = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "as dex:alice@example.com via dex" in out

    home = oidc_broker.workdir / "people" / "alice" / ".config" / "kubejit"
    refresh_file = home / "refresh-tokens.json"
    assert stat.S_IMODE(refresh_file.stat().st_mode) == 0o600
    assert list(json.loads(refresh_file.read_text())) == [f"{oidc_broker.url}|{dex.issuer}"]

    # An ID token about to expire is renewed with the refresh token before the call.
    session_file = home / "session.json"
    session = json.loads(session_file.read_text())
    header, _, _ = session["token"].split(".")
    stale = session["token"]
    session["token"] = f"{header}.{_b64json({'exp': 1})}.x"
    session_file.write_text(json.dumps(session))
    assert oidc_broker.json("alice", "whoami")["name"] == "dex:alice@example.com"
    renewed = json.loads(session_file.read_text())["token"]
    assert renewed not in (stale, session["token"])

    out = oidc_broker.cli("alice", "logout").stdout
    assert "Logged out" in out
    assert not session_file.exists() and not refresh_file.exists()
    again = oidc_broker.cli("alice", "whoami", check=False)
    assert again.returncode == 4 and "not logged in" in again.stderr


def test_no_dev_login_next_to_oidc(oidc_broker: Broker) -> None:
    dev = oidc_broker.cli("alice", "login", "--dev-user", "alice", check=False)
    assert dev.returncode == 5 and "the dev issuer is not enabled" in dev.stderr
    wrong = oidc_broker.cli("bob", "login", "--device", "--issuer", "corp", check=False)
    assert wrong.returncode == 2 and "no identity provider 'corp' (offered: dex)" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def _b64json(data: dict[str, Any]) -> str:
    import base64

    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
