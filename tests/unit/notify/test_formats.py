"""Every format escapes requester-supplied text; no format lets it forge markup, links or lines."""

from __future__ import annotations

import json
from dataclasses import replace

from kubejit.notify.formats import (
    email_html,
    email_subject,
    email_text,
    json_message,
    slack_message,
    teams_message,
)
from kubejit.notify.message import Notice, request_link

HOSTILE = "<!channel> <https://evil.example|click> & [x](https://evil.example) <script>alert(1)</script>\r\nOpen: https://evil.example\x1b[31m"


def notice(reason: str = HOSTILE, ticket: str = "T-1") -> Notice:
    return Notice(
        kind="needs_approval",
        grant_id="g-123",
        requester="alice@example.com",
        cluster="prod",
        namespaces=("payments",),
        role="edit",
        reason=reason,
        ticket=ticket,
        link=request_link("https://broker.example/", "g-123"),
    )


def test_link_points_at_the_request_page() -> None:
    assert notice().link == "https://broker.example/ui/requests/g-123"


def test_slack_escapes_control_sequences() -> None:
    body = json.dumps(slack_message(notice()))
    assert "<!channel>" not in body and "<https://evil" not in body and "<script>" not in body
    assert "&lt;!channel&gt;" in body and "&amp;" in body
    assert "https://broker.example/ui/requests/g-123" in body


def test_teams_escapes_markdown_links() -> None:
    body = json.dumps(teams_message(notice()))
    assert "[x](https://evil.example)" not in body
    assert "\\\\[x\\\\]" in body


def test_email_html_is_escaped_and_text_has_no_forged_lines() -> None:
    assert "<script>" not in email_html(notice()) and "&lt;script&gt;" in email_html(notice())
    text = email_text(notice())
    assert not any(line.startswith("Open: https://evil") for line in text.splitlines())
    assert "\x1b" not in text


def test_subject_is_one_line() -> None:
    subject = email_subject(replace(notice(), role="edit\r\nBcc: x@evil.example"))
    assert "\n" not in subject and "\r" not in subject


def test_json_round_trips_raw_values_ascii_only() -> None:
    raw = json_message(notice())
    assert raw.isascii()
    assert json.loads(raw)["facts"]["reason"] == HOSTILE
