"""CSV export of audit events: what people typed must not run as a spreadsheet formula."""

from __future__ import annotations

import pytest

from kubejit.cli.commands.audit import csv_row
from tests.unit.audit.test_ocsf import stored

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("reason", ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx"])
def test_a_reason_that_looks_like_a_formula_is_quoted(reason: str) -> None:
    row = csv_row(stored("grant.requested", reason=reason))
    assert f"'{reason}" in row
    assert reason not in row


def test_ordinary_cells_are_unchanged() -> None:
    row = csv_row(stored("grant.requested", reason="fix refunds", role="edit"))
    assert "fix refunds" in row and "edit" in row and "grant.requested" in row
