"""The JSON a sink ships for one stored event, in the sink's format.

``ocsf`` (the default) is the OCSF-shaped event of ``audit.ocsf`` (SIEMs parse it as is; the whole
kubejit event, hash chain included, rides along under ``unmapped.kubejit``); ``kubejit`` is the
stored event alone. Both carry the event id (``metadata.uid`` / ``event_id``): delivery is at least
once, and receivers de-duplicate on it. Both carry ``seq``, the order of the audit chain.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from kubejit.audit.event import StoredEvent
from kubejit.audit.ocsf import to_ocsf

PayloadFormat = Literal["ocsf", "kubejit"]


def event_payload(event: StoredEvent, fmt: PayloadFormat = "ocsf") -> dict[str, Any]:
    return to_ocsf(event) if fmt == "ocsf" else event.to_dict()


def event_json(event: StoredEvent, fmt: PayloadFormat = "ocsf") -> str:
    """Compact, ASCII-only JSON (no raw newlines or non-ASCII bytes: safe in syslog and JSON lines)."""
    return json.dumps(event_payload(event, fmt), separators=(",", ":"), sort_keys=True, ensure_ascii=True)
