"""login / whoami: `kubejit whoami` prints what the identity provider says as text (a name is never Rich
markup), the session's token goes only to the broker it was obtained for, and `kubejit login` reads the
broker's login offer tolerantly."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kubejit.cli.commands import auth
from kubejit.errors import AuthenticationFailed, InvalidInput
from kubejit.local import session

pytestmark = pytest.mark.unit


class _Broker:
    """Stands in for the broker's GET /v1/whoami answer."""

    answer: dict[str, Any] = {}
    opened: list[str] = []

    def __init__(self, url: str, **_: object) -> None:
        self.opened.append(url)

    def __enter__(self) -> _Broker:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def call(self, method: str, path: str, **_: object) -> dict[str, Any]:
        assert (method, path) == ("GET", "/v1/whoami")
        return self.answer


def test_names_and_groups_with_brackets_are_printed_as_they_are(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    session.save(session.Session(broker="http://127.0.0.1:1", token="t", user="x"))
    _Broker.answer = {
        "name": "corp:a[/]b[bold]",
        "issuer": "corp",
        "admin": False,
        "groups": ["corp:[red]x", "corp:y[/]"],
        "may_request": ["r[/]: view in team-a on dev, up to 1h, auto-approved"],
    }
    monkeypatch.setattr(auth, "BrokerClient", _Broker)
    auth.whoami(broker=None)
    out = capsys.readouterr().out
    assert "corp:a[/]b[bold] (issuer corp)" in out
    assert "groups: corp:[red]x, corp:y[/]" in out
    assert "  - r[/]: view in team-a on dev" in out


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_token_is_not_sent_to_another_broker(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    session.save(session.Session(broker="http://127.0.0.1:1", token="t", user="x"))
    monkeypatch.setattr(auth, "BrokerClient", _Broker)
    _Broker.opened = []
    if how == "environment":
        monkeypatch.setenv("KUBEJIT_BROKER", "https://elsewhere.example/")
    with pytest.raises(
        AuthenticationFailed,
        match=re.escape("logged in to the broker http://127.0.0.1:1, not https://elsewhere"),
    ):
        auth.whoami(broker="https://elsewhere.example" if how == "option" else None)
    assert _Broker.opened == []
    monkeypatch.delenv("KUBEJIT_BROKER", raising=False)
    auth.whoami(broker="http://127.0.0.1:1/")
    session.save(session.Session(broker="http://127.0.0.1:1/", token="t", user="x"))  # a hand-edited file
    auth.whoami(broker=None)
    assert _Broker.opened == ["http://127.0.0.1:1", "http://127.0.0.1:1"]


def test_a_newer_brokers_login_offer_with_more_fields_is_understood() -> None:
    offer = {"name": "corp", "issuer_url": "https://idp", "client_id": "cli", "scopes": ["openid"]}
    chosen = auth._choose_issuer({"issuers": [{**offer, "pkce_methods": ["S256"]}]}, None)
    assert (chosen.name, chosen.client_id, chosen.redirect_host) == ("corp", "cli", "127.0.0.1")
    with pytest.raises(InvalidInput, match="login configuration is incomplete"):
        auth._choose_issuer({"issuers": [{"name": "corp", "issuer_url": "https://idp"}]}, None)
    with pytest.raises(InvalidInput, match=re.escape("redirect to go to 'idp.example', not this machine")):
        auth._choose_issuer({"issuers": [{**offer, "redirect_host": "idp.example"}]}, None)
