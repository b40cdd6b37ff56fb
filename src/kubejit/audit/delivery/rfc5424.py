"""RFC 5424 syslog messages for audit events, and RFC 6587 octet-counting frames (pure).

``<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [kubejit@32473 seq=".." eventId=".."] JSON``: the
MSGID is the action, the structured data carries the chain position and the event id (so a SIEM
can de-duplicate without parsing the body), and MSG is the event as ASCII JSON (no BOM needed).
32473 is the enterprise number RFC 5612 reserves for documentation; override ``SD_ID`` if yours
differs. Octet counting (``LEN SP MSG``) is what TCP (RFC 6587) and TLS (RFC 5425) transports use.
"""

from __future__ import annotations

import re

from kubejit.audit.event import StoredEvent, rfc3339

SD_ID = "kubejit@32473"
SEVERITY_NOTICE = 5
SEVERITY_WARNING = 4
_NOT_PRINTABLE = re.compile(r"[^!-~]")


def header_field(value: str | None, *, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most ``limit`` characters, or NILVALUE."""
    if not value:
        return "-"
    cleaned = _NOT_PRINTABLE.sub("_", value)[:limit]
    return cleaned or "-"


def sd_param(value: str) -> str:
    """Escape ``"``, ``\\`` and ``]`` inside a structured-data parameter value (RFC 5424 6.3.3)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def severity(event: StoredEvent) -> int:
    """Notice for what went as asked; warning for refusals and failures, which a SOC looks at first."""
    return SEVERITY_NOTICE if event.outcome == "success" else SEVERITY_WARNING


def format_message(
    event: StoredEvent, body: str, *, facility: int, hostname: str, app_name: str = "kubejit"
) -> str:
    """One RFC 5424 SYSLOG-MSG for ``event`` with ``body`` (the JSON) as MSG."""
    pri = facility * 8 + severity(event)
    structured = f'[{SD_ID} seq="{event.seq}" eventId="{sd_param(event.event_id)}"]'
    return (
        f"<{pri}>1 {rfc3339(event.at)} {header_field(hostname, limit=255)} "
        f"{header_field(app_name, limit=48)} - {header_field(event.action, limit=32)} {structured} {body}"
    )


def octet_counted(message: str) -> bytes:
    """RFC 6587 3.4.1 / RFC 5425 4.3 framing: the byte length, a space, the message."""
    data = message.encode("utf-8")
    return str(len(data)).encode("ascii") + b" " + data
