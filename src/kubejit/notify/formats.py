"""Render a Notice for each channel, escaping requester-supplied text for that format.

Slack mrkdwn treats ``&``, ``<`` and ``>`` as control characters (``<!channel>``, ``<url|text>``),
so they are entity-escaped; Teams Adaptive Cards render Markdown in TextBlocks, so fact values go in
FactSets (plain text) and the title's Markdown characters are backslash-escaped; email HTML is
``html.escape``d; JSON is ``json.dumps`` with ASCII only.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from kubejit.notify.message import Notice

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_TEAMS_MD = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def _clean(text: str) -> str:
    """Control characters (CR/LF included) become spaces: no terminal escapes, no forged lines or headers."""
    return _CONTROL.sub(" ", text)


def slack_escape(text: str) -> str:
    return _clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def teams_escape(text: str) -> str:
    return _TEAMS_MD.sub(r"\\\1", _clean(text))


def slack_message(notice: Notice) -> dict[str, Any]:
    """A Block Kit message for a Slack-compatible incoming webhook."""
    fields = [
        {"type": "mrkdwn", "text": f"*{label}*\n{slack_escape(value)}"} for label, value in notice.facts()
    ]
    return {
        "text": slack_escape(f"{notice.title}: {notice.grant_id}"),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": notice.title}},
            {"type": "section", "fields": fields[:10]},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open request"},
                        "url": notice.link,
                    }
                ],
            },
        ],
    }


def teams_message(notice: Notice) -> dict[str, Any]:
    """An Adaptive Card wrapped as a Teams webhook message."""
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": teams_escape(notice.title)},
            {
                "type": "FactSet",
                "facts": [{"title": label, "value": teams_escape(value)} for label, value in notice.facts()],
            },
        ],
        "actions": [{"type": "Action.OpenUrl", "title": "Open request", "url": notice.link}],
    }
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }


def json_message(notice: Notice, *, event_id: str | None = None) -> str:
    """The generic webhook body (signed by the sender like the audit webhook); ``event_id`` lets a
    receiver drop a notice it already has (delivery is at least once)."""
    body: dict[str, Any] = {
        "kind": notice.kind,
        "title": notice.title,
        "grant_id": notice.grant_id,
        "link": notice.link,
        "facts": {label.lower(): value for label, value in notice.facts()},
    }
    if event_id is not None:
        body["event_id"] = event_id
    return _html_safe(json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=True))


def _html_safe(text: str) -> str:
    """``<``, ``>`` and ``&`` as ``\\u`` escapes (still the same JSON): a receiver that pastes the
    body into a page cannot be made to open a tag by a request's reason."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def email_subject(notice: Notice) -> str:
    """One line, no CR/LF (header injection), bounded length."""
    return _clean(f"[kubejit] {notice.title}: {notice.role} on {notice.cluster}")[:200]


def email_text(notice: Notice) -> str:
    lines = [notice.title, ""]
    lines += [f"{label}: {_clean(value)}" for label, value in notice.facts()]
    lines += ["", f"Open: {notice.link}", ""]
    return "\n".join(lines)


def email_html(notice: Notice) -> str:
    rows = "".join(
        f'<tr><th align="left">{html.escape(label)}</th><td>{html.escape(_clean(value))}</td></tr>'
        for label, value in notice.facts()
    )
    link = html.escape(notice.link, quote=True)
    return (
        f"<html><body><h2>{html.escape(notice.title)}</h2><table>{rows}</table>"
        f'<p><a href="{link}">Open request</a></p></body></html>'
    )


def dumps(message: dict[str, Any]) -> bytes:
    """A Slack or Teams message as the POST body: compact, ASCII only."""
    return _html_safe(json.dumps(message, separators=(",", ":"), ensure_ascii=True)).encode()
