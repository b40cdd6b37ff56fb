"""schemathesis hooks for tests/e2e/test_api_contract.py (loaded with SCHEMATHESIS_HOOKS).

One check replaces schemathesis' ``positive_data_acceptance``: the same check, except for the two
refusals of well-formed data that no schema can express, each answered 422: a duration over 31 days
in all (no pattern can bound a sum of parts; server/schemas.py describes it), and a role whose scope
the request gets wrong (``role-scope-mismatch``: which roles are cluster-wide is the policy's word).
Every other refusal of valid data fails.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

from kubejit.durations import parse_duration
from kubejit.errors import InvalidInput, RoleScopeMismatch


@schemathesis.check
def positive_data_acceptance_but_long_durations(ctx: Any, response: Any, case: Any) -> bool | None:
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if response.status_code == 422 and (
            duration_out_of_range(case.body) or problem_code(response) == RoleScopeMismatch.code
        ):
            return None
        raise


def duration_out_of_range(body: Any) -> bool:
    duration = body.get("duration") if isinstance(body, dict) else None
    if not isinstance(duration, str):
        return False
    try:
        parse_duration(duration)
    except InvalidInput:
        return True
    return False


def problem_code(response: Any) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None
