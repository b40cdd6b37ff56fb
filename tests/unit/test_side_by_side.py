"""`kubejit requests` makes its two calls at once: answers in order, and an error is never lost."""

from __future__ import annotations

import pytest

from kubejit.cli.commands.grants import _side_by_side
from kubejit.errors import BrokerUnreachable, PermissionDenied

pytestmark = pytest.mark.unit


def test_both_answers_come_back_in_call_order() -> None:
    assert _side_by_side(lambda: "mine", lambda: "waiting") == ("mine", "waiting")


def test_the_first_calls_error_is_raised_after_the_second_ended() -> None:
    ended: list[str] = []

    def first() -> object:
        raise BrokerUnreachable("down")

    def second() -> object:
        ended.append("second")
        return []

    with pytest.raises(BrokerUnreachable):
        _side_by_side(first, second)
    assert ended == ["second"]


def test_the_second_calls_error_reaches_the_caller() -> None:
    def second() -> object:
        raise PermissionDenied("no")

    with pytest.raises(PermissionDenied):
        _side_by_side(lambda: [], second)
