from __future__ import annotations

import json
import logging
import sys

import pytest

from kubejit import logcontext
from kubejit.server.logs import JsonFormatter

pytestmark = pytest.mark.unit


def _record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("kubejit.t", logging.WARNING, __file__, 1, message, args, info)


def test_a_json_line_names_request_and_grant_when_known_and_keeps_multiline_text_in_one_line() -> None:
    formatter = JsonFormatter()
    plain = json.loads(formatter.format(_record("hello %s", "world")))
    assert plain.keys() == {"time", "level", "logger", "message"}
    assert (plain["level"], plain["logger"], plain["message"]) == ("WARNING", "kubejit.t", "hello world")
    scope = {"path_params": {"grant_id": "g-route"}}
    with logcontext.serving("rid-1", scope):
        line = formatter.format(_record("line one\nline two", exc=True))
        with logcontext.about_grant("g-worker"):
            named = json.loads(formatter.format(_record("x")))
    assert "\n" not in line
    entry = json.loads(line)
    assert (entry["request_id"], entry["grant_id"]) == ("rid-1", "g-route")
    assert entry["message"] == "line one\nline two" and "ValueError: boom" in entry["exception"]
    assert named["grant_id"] == "g-worker"
    assert "request_id" not in json.loads(formatter.format(_record("after")))
