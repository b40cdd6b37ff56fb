"""A refused or failed read is worded for the person scanning, never for the broker."""

from __future__ import annotations

import pytest

from kubejit.clusters.scan.fetch import scan_error
from kubejit.errors import ClusterError, ClusterForbidden, ClusterUnavailable


def test_forbidden_says_which_list_and_how_to_get_the_right_to_read() -> None:
    error = scan_error(403, 'clusterroles is forbidden: User "bob" cannot list', context="prod", what="roles")
    assert isinstance(error, ClusterForbidden)
    assert str(error).startswith("context 'prod' may not list roles: clusterroles is forbidden")
    assert error.hint is not None and "docs/scan.md" in error.hint and "broker" not in error.hint


@pytest.mark.parametrize(
    ("code", "kind", "fragment"),
    [
        (401, ClusterError, "did not accept its credentials"),
        (429, ClusterUnavailable, "could not list secrets now (429)"),
        (503, ClusterUnavailable, "could not list secrets now (503)"),
        (404, ClusterError, "answered 404 to list secrets"),
    ],
)
def test_other_answers(code: int, kind: type[ClusterError], fragment: str) -> None:
    error = scan_error(code, "", context="prod", what="secrets")
    assert type(error) is kind and fragment in str(error) and str(error).endswith("no message")
    assert "broker" not in str(error) + str(error.hint)


def test_a_long_message_is_cut() -> None:
    assert len(str(scan_error(500, "x" * 10_000, context="prod", what="roles"))) < 600
