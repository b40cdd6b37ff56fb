"""Dex, a real OIDC provider, on loopback for tests: generated config, memory storage, device flow.

    with Dex(workdir) as dex:
        dex.issuer                      # http://127.0.0.1:<port>/dex
        DexBrowser(dex).approve_device(user_code, password=ALICE)      # plays the person's browser

Who can sign in (Dex v2.41.1):

- ``STATIC_USERS``: Dex's password database (``staticPasswords``), the login form. Dex gives these
  users **no groups**: static passwords have no groups field in this version.
- The ``proxy`` connector (Dex's ``authproxy``): Dex trusts an authenticating proxy in front of it for
  the user (``X-Remote-User``) and groups (``X-Remote-Group``). ``DexBrowser`` plays that proxy, so
  tests get people **with groups** through Dex's real flows (device, code + PKCE, approval screen,
  signed ID tokens) without an LDAP server. Only the test can reach this loopback Dex.

Clients: ``kubejit-cli`` (public, the CLI: device flow and loopback redirect on ``localhost``) and
``kubejit-broker`` (the broker's audience; it trusts ``kubejit-cli`` as a peer, so the CLI asks for
scope ``audience:server:client_id:kubejit-broker`` and gets ID tokens the broker accepts).
"""

from __future__ import annotations

import html
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from kubejit.testing import binaries
from kubejit.testing.processes import LOOPBACK, free_port, log_tail, spawn, terminate

CLI_CLIENT = "kubejit-cli"
BROKER_CLIENT = "kubejit-broker"
#: What the CLI asks for: identity, groups, a refresh token, and an ID token for the broker.
CLI_SCOPES = [
    "openid",
    "profile",
    "email",
    "groups",
    "offline_access",
    f"audience:server:client_id:{BROKER_CLIENT}",
]
PROXY_CONNECTOR = "proxy"


@dataclass(frozen=True)
class StaticUser:
    email: str
    username: str
    password: str
    #: bcrypt of ``password`` (cost 10), as Dex's config wants it.
    bcrypt_hash: str
    user_id: str


#: Test-only credentials, public on purpose.
ALICE = StaticUser(
    "alice@example.com",
    "alice",
    "kubejit-alice-pw",
    "$2a$10$c72V4fK6iYzl1i06Q34.iO4XdfZxWJVubLZXfL3ebL0e0vO1JWgeq",
    "08a8684b-db88-4b73-90a9-3cd1661f5466",
)
BOB = StaticUser(
    "bob@example.com",
    "bob",
    "kubejit-bob-pw",
    "$2a$10$SiYXmkCbK3eLRl/5a7RILeyDFBHeTQ4ewodRFzza0izDeKU2Hi2SK",
    "41331323-6f44-45e6-b3b9-2c4b60c02be5",
)
STATIC_USERS = (ALICE, BOB)


@dataclass(frozen=True)
class ProxyUser:
    """Someone the authenticating proxy vouches for, with groups (via Dex's authproxy connector)."""

    name: str
    groups: tuple[str, ...]
    email: str | None = None


class Dex:
    def __init__(self, workdir: Path, *, id_token_ttl: str = "10m") -> None:
        self.workdir = workdir
        self.port = free_port()
        self.issuer = f"http://{LOOPBACK}:{self.port}/dex"
        self.id_token_ttl = id_token_ttl
        self.process: Any = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "dex.log"

    def config(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "storage": {"type": "memory"},
            "web": {"http": f"{LOOPBACK}:{self.port}"},
            "logger": {"level": "info"},
            "oauth2": {
                "skipApprovalScreen": False,  # tests click "Grant Access" like a person would
                "responseTypes": ["code"],
                "grantTypes": [
                    "authorization_code",
                    "refresh_token",
                    "urn:ietf:params:oauth:grant-type:device_code",
                ],
            },
            "expiry": {"idTokens": self.id_token_ttl, "deviceRequests": "5m"},
            "enablePasswordDB": True,
            "staticPasswords": [
                {"email": u.email, "username": u.username, "hash": u.bcrypt_hash, "userID": u.user_id}
                for u in STATIC_USERS
            ],
            "connectors": [{"type": "authproxy", "id": PROXY_CONNECTOR, "name": "Proxy", "config": {}}],
            "staticClients": [
                {"id": CLI_CLIENT, "name": "kubejit CLI", "public": True},
                {
                    "id": BROKER_CLIENT,
                    "name": "kubejit broker",
                    "secret": "broker-secret-for-tests-only",
                    "trustedPeers": [CLI_CLIENT],
                    "redirectURIs": [f"http://{LOOPBACK}:1/unused"],
                },
            ],
        }

    def start(self, *, timeout: float = 30.0) -> Dex:
        binary = binaries.ensure(binaries.DEX)
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "dex.yaml"
        config_path.write_text(json.dumps(self.config(), indent=2))  # JSON is YAML
        self.process = spawn([str(binary), "serve", str(config_path)], log_path=self.log_path, detached=False)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"dex exited with {self.process.returncode}:\n{log_tail(self.log_path)}"
                    )
                try:
                    if http.get(self.issuer + "/.well-known/openid-configuration").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"dex did not answer within {timeout:.0f}s:\n{log_tail(self.log_path)}")

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process.pid, grace_seconds=5)
            self.process.wait()
            self.process = None

    def __enter__(self) -> Dex:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


_FORM = re.compile(r"<form([^>]*)>(.*?)</form>", re.S | re.I)
_ACTION = re.compile(r"action=\"([^\"]*)\"", re.I)
_INPUT = re.compile(r"<(?:input|button)[^>]*?name=\"([^\"]+)\"[^>]*?value=\"([^\"]*)\"", re.S | re.I)
_LINK = re.compile(r"href=\"([^\"]*?/auth/([\w-]+)\?[^\"]*)\"", re.I)


class DexBrowser:
    """What a person's browser does at Dex: follow redirects, fill in forms, press "Grant Access"."""

    def __init__(self, dex: Dex) -> None:
        self.dex = dex

    def approve_device(
        self, user_code: str, *, user: StaticUser | None = None, proxy_user: ProxyUser | None = None
    ) -> str:
        """Enter ``user_code`` at Dex's device page, sign in, approve; returns the final page's text."""
        with httpx.Client(follow_redirects=True, timeout=10) as http:
            page = http.get(self.dex.issuer + "/device")
            action, fields = self._form(page, containing="user_code")
            fields["user_code"] = user_code
            page = http.post(action, data=fields)
            return self._sign_in_and_approve(http, page, user=user, proxy_user=proxy_user)

    def authorize(
        self, url: str, *, user: StaticUser | None = None, proxy_user: ProxyUser | None = None
    ) -> str:
        """Open an authorization URL (code + PKCE); returns where Dex finally redirects (the app's URL)."""
        with httpx.Client(follow_redirects=False, timeout=10) as http:
            response = http.get(url)
            return self._until_app(http, response, user=user, proxy_user=proxy_user)

    def _until_app(self, http: httpx.Client, response: httpx.Response, **who: Any) -> str:
        for _ in range(20):
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if not target.startswith(self.dex.issuer):
                    return target  # back to the application (the CLI's loopback listener)
                response = http.get(target, headers=self._proxy_headers(target, who.get("proxy_user")))
                continue
            response = self._step(http, response, **who, follow=False)
        raise RuntimeError("too many steps at dex")

    def _sign_in_and_approve(self, http: httpx.Client, page: httpx.Response, **who: Any) -> str:
        for _ in range(10):
            if "/device/callback" in str(page.url) or (
                "device/callback" in page.text and "Login Successful" in page.text
            ):
                return page.text
            page = self._step(http, page, **who, follow=True)
        raise RuntimeError(f"did not finish at dex; last page {page.url}: {page.text[:400]}")

    def _step(
        self,
        http: httpx.Client,
        page: httpx.Response,
        *,
        user: StaticUser | None,
        proxy_user: ProxyUser | None,
        follow: bool,
    ) -> httpx.Response:
        if page.status_code >= 400:
            raise RuntimeError(f"dex answered {page.status_code} at {page.url}: {_text(page.text)[:300]}")
        text = page.text
        links = {connector: href for href, connector in _LINK.findall(text)}
        if links and "password" not in text.lower().split("<form")[-1]:
            connector = PROXY_CONNECTOR if proxy_user is not None else "local"
            target = urljoin(str(page.url), html.unescape(links[connector]))
            return self._get(http, target, proxy_user, follow)
        if 'name="password"' in text:
            if user is None:
                raise RuntimeError("dex asks for a password but no static user was given")
            action, fields = self._form(page, containing="password")
            fields.update(login=user.email, password=user.password)
            return http.post(action, data=fields, follow_redirects=follow)
        if 'name="approval"' in text:
            action, fields = self._form(page, containing="approval", value="approve")
            return http.post(action, data=fields, follow_redirects=follow)
        raise RuntimeError(f"unexpected page at dex {page.url}: {_text(text)[:300]}")

    def _get(
        self, http: httpx.Client, url: str, proxy_user: ProxyUser | None, follow: bool
    ) -> httpx.Response:
        response = http.get(url, headers=self._proxy_headers(url, proxy_user), follow_redirects=False)
        while follow and response.is_redirect:
            url = urljoin(str(response.url), response.headers["location"])
            response = http.get(url, headers=self._proxy_headers(url, proxy_user), follow_redirects=False)
        return response

    def _proxy_headers(self, url: str, proxy_user: ProxyUser | None) -> dict[str, str]:
        if proxy_user is None or f"/callback/{PROXY_CONNECTOR}" not in url:
            return {}
        headers = {"X-Remote-User": proxy_user.name, "X-Remote-Group": ",".join(proxy_user.groups)}
        if proxy_user.email:
            headers["X-Remote-User-Email"] = proxy_user.email
        return headers

    def _form(
        self, page: httpx.Response, *, containing: str, value: str | None = None
    ) -> tuple[str, dict[str, str]]:
        """The form with a field named ``containing`` (holding ``value``, if given): its URL and fields."""
        for attributes, body in _FORM.findall(page.text):
            fields = {name: html.unescape(v) for name, v in _INPUT.findall(body)}
            if f'name="{containing}"' in body and (value is None or fields.get(containing) == value):
                action = _ACTION.search(attributes)
                target = html.unescape(action.group(1)) if action and action.group(1) else str(page.url)
                return urljoin(str(page.url), target), fields
        raise RuntimeError(f"no form with {containing!r} at {page.url}: {_text(page.text)[:300]}")


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)).strip()
