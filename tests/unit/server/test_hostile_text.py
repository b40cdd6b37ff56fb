"""Free text is one line of printable text: control characters are refused (422) and nothing is stored.

Approvers read reasons, comments and tickets in their terminals (``kubejit requests``): an ESC there
is an escape sequence of the requester's choosing (a hidden link, a cleared screen). Rich markup such
as ``[/x]`` is plain text for the API; the CLI prints it literally (tests/unit/test_cli_render.py).
"""

from __future__ import annotations

import pytest

from tests.unit.server.test_api import GOOD, World, world

__all__ = ["world"]  # the fixture

pytestmark = pytest.mark.unit

HOSTILE_CONTROLS = [
    "\x1b]8;;https://evil\x07click\x1b]8;;\x07",
    "\x1b[2J",
    "a\nb",
    "a\rb",
    "\x9b2J",
    "\x00",
    # Bidirectional controls reorder what the approver's terminal shows (Trojan Source).
    "approve \u202enigol\u202c",
    "\u2066safe\u2069",
]


@pytest.mark.parametrize("text", HOSTILE_CONTROLS)
def test_a_reason_with_control_characters_is_refused(world: World, text: str) -> None:
    r = world.http.post("/v1/grants", json={**GOOD, "reason": text}, headers=world.auth("alice"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "control character" in r.json()["detail"]
    assert world.store.grants == {} and world.cluster.objects == {}


@pytest.mark.parametrize("text", ["[/x]", "[link=https://evil]x[/link]", "[bold red]urgent"])
def test_markup_is_plain_text_for_the_api(world: World, text: str) -> None:
    r = world.http.post("/v1/grants", json={**GOOD, "reason": text}, headers=world.auth("alice"))
    assert r.status_code == 201, r.text
    assert r.json()["reason"] == text


def test_ticket_comment_deny_reason_and_offboarding_refuse_control_characters(world: World) -> None:
    r = world.http.post("/v1/grants", json={**GOOD, "ticket": "T-1\x1b[2J"}, headers=world.auth("alice"))
    assert r.status_code == 422 and world.store.grants == {}
    pending = {**GOOD, "role": "edit", "reason": "fix"}
    grant = world.http.post("/v1/grants", json=pending, headers=world.auth("alice")).json()
    before = world.store.actions()
    for path, body in (
        ("approve", {"comment": "ok\x1b[2J"}),
        ("deny", {"reason": "no\x07"}),
        ("revoke", {"reason": "\x85"}),
    ):
        r = world.http.post(f"/v1/grants/{grant['id']}/{path}", json=body, headers=world.auth("bob"))
        assert r.status_code == 422, (path, r.text)
    r = world.http.post(
        "/v1/revocations", json={"user": "alice\x1b", "reason": ""}, headers=world.auth("root")
    )
    assert r.status_code == 422
    assert world.store.actions() == before
    assert (
        world.http.get(f"/v1/grants/{grant['id']}", headers=world.auth("alice")).json()["state"] == "pending"
    )


def test_a_blank_deny_reason_is_refused(world: World) -> None:
    pending = {**GOOD, "role": "edit", "reason": "fix"}
    grant = world.http.post("/v1/grants", json=pending, headers=world.auth("alice")).json()
    r = world.http.post(f"/v1/grants/{grant['id']}/deny", json={"reason": "   "}, headers=world.auth("bob"))
    assert r.status_code == 422
