"""The broker's log lines: ``logging.format: text`` (for a terminal) or ``json`` (one object a line).

A JSON line has ``time`` (RFC 3339, UTC), ``level``, ``logger`` and ``message``, plus ``request_id``
and ``grant_id`` when the line is about one (``kubejit.logcontext``), and ``exception`` with the
traceback as one string. A log collector needs no multi-line parsing, and a message can never
break out of its field.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

from kubejit import logcontext

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: One line per HTTP call or migration step is noise at INFO.
_CHATTY = ("httpx", "httpx2", "alembic")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id, grant_id = logcontext.request_id(), logcontext.grant_id()
        if request_id is not None:
            line["request_id"] = request_id
        if grant_id is not None:
            line["grant_id"] = grant_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(log_format: Literal["text", "json"], *, level: int = logging.INFO) -> None:
    """Route every logger (uvicorn's too: it is started with ``log_config=None``) to stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for chatty in _CHATTY:
        logging.getLogger(chatty).setLevel(logging.WARNING)
