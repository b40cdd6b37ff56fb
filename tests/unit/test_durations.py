from __future__ import annotations

from datetime import timedelta

import pytest

from kubejit.durations import format_duration, parse_duration
from kubejit.errors import InvalidInput

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        (" 45S ", timedelta(seconds=45)),
    ],
)
def test_valid(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize(
    "text", ["", "-5m", "10y", "5", "m", "0m", "1.5h", "1h 30m", "40d", "9" * 40 + "s", "5m;rm"]
)
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_duration(text)
