"""The OpenAPI document: valid 3.1, and every error an operation gives is a declared problem."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from interlock.server.app import create_app
from interlock.server.problems import PROBLEM_JSON, ProblemType
from tests.conftest import make_settings

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def build_app(template: Path, data_dir: Path) -> FastAPI:
    """The document does not depend on the database: one SQLite copy is enough."""
    shutil.copyfile(template, data_dir / "interlock.db")
    settings = make_settings(f"sqlite:///{data_dir / 'interlock.db'}", data_dir)
    return create_app(settings)


@pytest.fixture(scope="module")
def document(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = build_app(sqlite_template, tmp_path_factory.mktemp("openapi"))
    with TestClient(app) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def test_the_served_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    OPENAPI_31_VALIDATOR.validate(document)


def test_every_error_response_is_a_problem(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if (
                status.isdigit()
                and int(status) >= 400
                and (method, path, status)
                != (
                    "GET",
                    "/readyz",
                    "503",  # readyz answers with its readiness report, not a problem
                )
            ):
                assert response["content"] == {PROBLEM_JSON: {"schema": PROBLEM_REF}}, (
                    method,
                    path,
                    status,
                )


def test_fastapis_own_validation_error_shape_is_gone(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert set(schemas["Problem"]["properties"]["type"]["enum"]) == {k.uri for k in ProblemType}


@pytest.mark.parametrize(
    ("method", "path", "expected", "absent"),
    [
        ("GET", "/healthz", {"400", "500"}, {"401", "403", "422", "429"}),
        ("POST", "/api/v1/auth/login", {"401", "413", "415", "422", "429"}, {"403", "409"}),
        ("GET", "/api/v1/projects", {"401", "403", "422", "429"}, {"409", "412", "413"}),
        ("POST", "/api/v1/projects", {"401", "403", "409", "413", "415", "422"}, {"412"}),
        ("PATCH", "/api/v1/projects/{project}", {"404", "409", "412", "428"}, set()),
        ("DELETE", "/api/v1/projects/{project}", {"401", "403", "404", "409"}, {"413", "415"}),
        ("POST", "/api/v1/jobs", {"401", "403", "409", "422", "503"}, set()),
    ],
)
def test_each_operation_declares_the_problems_it_can_give(
    document: dict[str, Any], method: str, path: str, expected: set[str], absent: set[str]
) -> None:
    declared = set(document["paths"][path][method.lower()]["responses"])
    assert expected <= declared
    assert not absent & declared


def test_guarded_operations_say_how_to_authenticate(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["apiKey"]["description"],
    }
    projects = document["paths"]["/api/v1/projects"]["get"]
    assert projects["security"] == [{"apiKey": []}, {"session": []}]
    assert "security" not in document["paths"]["/healthz"]["get"]


def test_the_document_follows_the_routes(sqlite_template: Path, tmp_path: Path) -> None:
    app = build_app(sqlite_template, tmp_path)
    first = app.openapi()
    assert app.openapi() is first  # computed once

    @app.get("/api/v1/late-route")
    def late() -> dict[str, str]:
        return {}

    later = app.openapi()
    assert "/api/v1/late-route" in later["paths"]
    assert "500" in later["paths"]["/api/v1/late-route"]["get"]["responses"]
