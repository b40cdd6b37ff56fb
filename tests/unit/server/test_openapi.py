"""The OpenAPI document declares every answer: problem+json errors per route, 405 with Allow."""

from __future__ import annotations

from typing import Any

import pytest

from kubejit.errors import NotFound, PermissionDenied, RequestTooLarge
from kubejit.server.problems import PROBLEM_JSON, declare
from tests.unit.server.test_api import World, world

__all__ = ["world"]  # the fixture

pytestmark = pytest.mark.unit


def _operations(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    document = world.http.get("/openapi.json").json()
    return [(m, p, op) for p, ops in document["paths"].items() for m, op in ops.items()]


def test_every_operation_declares_its_problem_responses(world: World) -> None:
    operations = _operations(world)
    assert len(operations) >= 15
    for method, path, operation in operations:
        errors = {s: r for s, r in operation["responses"].items() if s.startswith(("4", "5"))}
        assert {"400", "413", "422", "503"} <= set(errors), f"{method} {path}"
        for status, response in errors.items():
            assert list(response["content"]) == [PROBLEM_JSON], f"{method} {path} {status}"
            schema = response["content"][PROBLEM_JSON]["schema"]
            assert schema == {"$ref": "#/components/schemas/ProblemDetails"}
        if operation.get("security"):
            assert "401" in errors, f"{method} {path}"


def test_problem_details_schema_is_in_the_components(world: World) -> None:
    schemas = world.http.get("/openapi.json").json()["components"]["schemas"]
    assert set(schemas["ProblemDetails"]["required"]) == {"type", "title", "status", "detail", "code"}
    assert "HTTPValidationError" not in schemas  # FastAPI's default 422 body is not what the API sends


def test_declared_statuses_come_from_the_error_tree() -> None:
    declared = declare(NotFound, PermissionDenied, RequestTooLarge)
    assert sorted(declared) == [403, 404, 413]
    assert "not-found" in declared[404]["description"]


def test_routes_with_a_bearer_token_declare_the_scheme(world: World) -> None:
    by_route = {(m, p): op for m, p, op in _operations(world)}
    assert by_route[("get", "/v1/grants")]["security"] == [{"HTTPBearer": []}]
    assert "security" not in by_route[("get", "/v1/login-config")]


def test_constraints_enforced_in_code_are_in_the_document(world: World) -> None:
    document = world.http.get("/openapi.json").json()
    parameters = {p["name"]: p for p in document["paths"]["/v1/grants"]["get"]["parameters"]}
    assert parameters["scope"]["schema"]["enum"] == ["mine", "pending-for-me", "all"]
    request = document["components"]["schemas"]["GrantRequestIn"]["properties"]
    assert request["namespaces"]["uniqueItems"] is True
    assert "pattern" in request["duration"]["anyOf"][0]
    assert "pattern" in request["reason"]


def test_an_unknown_scope_is_refused(world: World) -> None:
    r = world.http.get("/v1/grants", params={"scope": "everyone"}, headers=world.auth("alice"))
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM_JSON


def test_a_wrong_method_is_405_with_every_allowed_method(world: World) -> None:
    r = world.http.delete("/v1/grants", headers=world.auth("alice"))
    assert r.status_code == 405 and r.headers["content-type"] == PROBLEM_JSON
    assert r.headers["allow"] == "GET, POST"  # not only the first route at the path (POST)


def test_an_unparseable_body_is_a_documented_400(world: World) -> None:
    headers = {**world.auth("alice"), "content-type": "application/json"}
    r = world.http.post("/v1/grants/g1/approve", content=b"\xff\xfe", headers=headers)
    assert r.status_code in (400, 422) and r.headers["content-type"] == PROBLEM_JSON
