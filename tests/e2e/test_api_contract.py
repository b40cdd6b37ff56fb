"""The OpenAPI document is the API's contract: schemathesis, every check, against a real broker process.

Every operation is called with examples generated from the document (valid and invalid), as an
admin of the dev issuer so the authenticated routes answer more than 401. Each answer must be one the
document declares: its status, its media type (problem+json for errors), its headers and its body; 405
must carry ``Allow``; valid input must not be refused and invalid input must be. The one refusal of
valid-looking input that is allowed is a duration over 31 days in all: no pattern can say it, so the
document only describes it (server/schemas.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, seed, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

from kubejit.durations import parse_duration
from kubejit.errors import InvalidInput
from tests.broker_identity import BrokerIdentity
from tests.broker_process import Broker

pytestmark = pytest.mark.e2e

#: Small enough for ~1 minute on a loaded 2-core machine, over all operations.
MAX_EXAMPLES = 12
SEED = 20261203
#: Statuses answered per operation, to prove the token was used and to print the count of cases.
ANSWERS: dict[str, list[int]] = {}


@pytest.fixture(scope="module")
def contract_broker(
    tmp_path_factory: pytest.TempPathFactory,
    broker_identity: BrokerIdentity,
    second_broker_identity: BrokerIdentity,
) -> Iterator[Broker]:
    running = Broker(
        tmp_path_factory.mktemp("contract") / "broker", [broker_identity, second_broker_identity]
    )
    running.workdir.mkdir()
    running.start()
    yield running
    running.stop()
    print(f"\nschemathesis: {sum(map(len, ANSWERS.values()))} cases over {len(ANSWERS)} operations")


@pytest.fixture(scope="module")
def admin_token(contract_broker: Broker) -> str:
    answer = httpx.post(f"{contract_broker.url}/v1/dev/login", json={"user": "root"}, timeout=30)
    answer.raise_for_status()
    return str(answer.json()["token"])


@pytest.fixture(scope="module")
def api(contract_broker: Broker, admin_token: str) -> Any:
    # Given as the document's bearer scheme, so schemathesis knows when it leaves the token out.
    config = SchemathesisConfig.from_dict({"auth": {"openapi": {"HTTPBearer": {"bearer": admin_token}}}})
    return schemathesis.openapi.from_url(f"{contract_broker.url}/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api")


def positive_data_acceptance_but_long_durations(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' own check, except that a duration over 31 days in all may be refused (422)."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if response.status_code == 422 and _duration_out_of_range(case.body):
            return None
        raise


def _duration_out_of_range(body: Any) -> bool:
    duration = body.get("duration") if isinstance(body, dict) else None
    if not isinstance(duration, str):
        return False
    try:
        parse_duration(duration)
    except InvalidInput:
        return True
    return False


def _checks() -> list[Any]:
    load_all_checks()
    found = [check for check in CHECKS.get_all() if check is not positive_data_acceptance]
    return [*found, positive_data_acceptance_but_long_durations]


@schema.parametrize()
@seed(SEED)
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
def test_every_answer_is_the_documented_one(case: Any) -> None:
    response = case.call_and_validate(checks=_checks())
    ANSWERS.setdefault(case.operation.label, []).append(response.status_code)


def test_authenticated_operations_were_reached(contract_broker: Broker) -> None:
    """With the token, schemathesis got past authentication: some answers were neither 401 nor 404."""
    assert ANSWERS, "run with the contract test above"
    assert any(200 <= s < 300 for s in ANSWERS.get("GET /v1/whoami", [])), ANSWERS.get("GET /v1/whoami")
    assert any(200 <= s < 300 for s in ANSWERS.get("GET /v1/grants", []))
