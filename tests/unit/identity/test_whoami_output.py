"""`kubejit whoami` prints what the identity provider says as text: a name is never Rich markup."""

from __future__ import annotations

from typing import Any

import pytest

from kubejit.cli import session
from kubejit.cli.commands import auth

pytestmark = pytest.mark.unit


class _Broker:
    """Stands in for the broker's GET /v1/whoami answer."""

    answer: dict[str, Any] = {}

    def __init__(self, *_: object, **__: object) -> None:
        pass

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
