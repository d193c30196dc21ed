"""Every error of the management API is an RFC 9457 problem, and a refused write changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from interlock.server.auth.deps import get_db
from interlock.server.auth.roles import Role
from interlock.server.db.engine import Database
from interlock.server.problems import DESCRIPTIONS, STATUS_TITLES, ProblemType
from interlock.server.projects import service as projects
from interlock.server.settings import Settings
from tests.conftest import make_settings
from tests.helpers import TEST_ACTOR, assert_problem
from tests.server.logcapture import captured_logs

MAX_BODY = 4096
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path, max_body_bytes=MAX_BODY)


@pytest.fixture
def viewer_key(db: Database) -> str:
    from interlock.server.auth import service as auth

    with db.write_session() as session:
        default = projects.find_project(session, "default")
        _, value = auth.create_key(
            session, TEST_ACTOR, name="viewer", role=Role.VIEWER, project=default
        )
    return value


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _state(client: TestClient, admin_key: str) -> tuple[Any, Any]:
    """What a refused write must leave as it was: every project and the whole audit log."""
    projects_page = client.get(
        "/api/v1/projects", params={"limit": 200}, headers=_bearer(admin_key)
    )
    audit_page = client.get("/api/v1/audit", params={"limit": 200}, headers=_bearer(admin_key))
    assert projects_page.status_code == audit_page.status_code == 200
    return projects_page.json(), audit_page.json()


def _too_large_stream() -> Iterator[bytes]:
    """A body sent chunked, without Content-Length, larger than the limit."""
    for _ in range(MAX_BODY // 512 + 2):
        yield b" " * 512


@dataclass(frozen=True)
class BadWrite:
    name: str
    method: str
    path: str
    status: int
    slug: str
    who: str = "admin"
    kwargs: dict[str, Any] = field(default_factory=dict)


BAD_WRITES = [
    BadWrite(
        "malformed JSON",
        "POST",
        "/api/v1/projects",
        400,
        "malformed-request",
        kwargs={"content": b'{"key": "new", "name": ', "headers": JSON},
    ),
    BadWrite(
        "a body that is not UTF-8",
        "POST",
        "/api/v1/projects",
        400,
        "malformed-request",
        kwargs={"content": b'{"key": "\xff\xfe", "name": "x"}', "headers": JSON},
    ),
    BadWrite(
        "an invalid nested field",
        "POST",
        "/api/v1/projects",
        422,
        "validation-error",
        kwargs={"json": {"key": "new", "name": "New", "environments": [{"key": "Not A Slug"}]}},
    ),
    BadWrite(
        "no API key",
        "POST",
        "/api/v1/projects",
        401,
        "unauthenticated",
        who="anonymous",
        kwargs={"json": {"key": "new", "name": "New"}},
    ),
    BadWrite(
        "a key without the right",
        "POST",
        "/api/v1/projects",
        403,
        "forbidden",
        who="viewer",
        kwargs={"json": {"key": "new", "name": "New"}},
    ),
    BadWrite(
        "an unknown project",
        "PATCH",
        "/api/v1/projects/nowhere",
        404,
        "not-found",
        kwargs={"json": {"name": "Renamed"}, "headers": {"If-Match": '"1"'}},
    ),
    BadWrite(
        "a method the path does not have",
        "PUT",
        "/api/v1/projects/default",
        405,
        "method-not-allowed",
        kwargs={"json": {"name": "Renamed"}},
    ),
    BadWrite(
        "an existing key",
        "POST",
        "/api/v1/projects",
        409,
        "conflict",
        kwargs={"json": {"key": "default", "name": "Again"}},
    ),
    BadWrite(
        "a stale If-Match",
        "PATCH",
        "/api/v1/projects/default",
        412,
        "precondition-failed",
        kwargs={"json": {"name": "Renamed"}, "headers": {"If-Match": '"999"'}},
    ),
    BadWrite(
        "a declared body over the limit",
        "POST",
        "/api/v1/projects",
        413,
        "body-too-large",
        kwargs={"content": b" " * (MAX_BODY + 1), "headers": JSON},
    ),
    BadWrite(
        "a chunked body over the limit",
        "POST",
        "/api/v1/projects",
        413,
        "body-too-large",
        kwargs={"content": _too_large_stream, "headers": JSON},
    ),
    BadWrite(
        "a body that is not JSON",
        "POST",
        "/api/v1/projects",
        415,
        "unsupported-media-type",
        kwargs={"content": b"key=new&name=New", "headers": {"Content-Type": "text/plain"}},
    ),
    BadWrite(
        "no If-Match",
        "PATCH",
        "/api/v1/projects/default",
        428,
        "precondition-required",
        kwargs={"json": {"name": "Renamed"}},
    ),
]


@pytest.mark.parametrize("bad", BAD_WRITES, ids=[b.name for b in BAD_WRITES])
def test_a_refused_write_is_a_problem_and_changes_nothing(
    bad: BadWrite, client: TestClient, admin_key: str, viewer_key: str
) -> None:
    before = _state(client, admin_key)
    kwargs = dict(bad.kwargs)
    headers = dict(kwargs.pop("headers", {}))
    if bad.who != "anonymous":
        headers.update(_bearer(admin_key if bad.who == "admin" else viewer_key))
    if callable(kwargs.get("content")):
        kwargs["content"] = kwargs["content"]()
    response = client.request(bad.method, bad.path, headers=headers, **kwargs)
    assert_problem(response, bad.status, bad.slug)
    assert _state(client, admin_key) == before


def test_validation_errors_point_at_each_field_with_a_json_pointer(
    client: TestClient, admin_key: str
) -> None:
    body = {
        "key": "Not A Slug",
        "name": "New",
        "environments": [
            {"key": "Not A Slug", "name": "Ok"},
            {"key": "ok2", "name": "Ok", "colour": 1},
        ],
    }
    response = client.post("/api/v1/projects", json=body, headers=_bearer(admin_key))
    problem = assert_problem(response, 422, "validation-error")
    pointers = {error["pointer"] for error in problem["errors"]}
    assert pointers == {"/key", "/environments/0/key", "/environments/1/colour"}
    assert all(error["detail"] for error in problem["errors"])


def test_a_missing_nested_field_is_pointed_at(client: TestClient, admin_key: str) -> None:
    body = {"key": "new", "name": "New", "environments": [{"key": "dev"}]}
    response = client.post("/api/v1/projects", json=body, headers=_bearer(admin_key))
    problem = assert_problem(response, 422, "validation-error")
    assert [e["pointer"] for e in problem["errors"]] == ["/environments/0/name"]


def test_a_bad_query_parameter_is_named_as_a_parameter(client: TestClient, admin_key: str) -> None:
    response = client.get("/api/v1/projects", params={"limit": "many"}, headers=_bearer(admin_key))
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"] == [
        {"parameter": "limit", "in": "query", "detail": problem["errors"][0]["detail"]}
    ]


def test_a_page_size_over_the_cap_is_refused(client: TestClient, admin_key: str) -> None:
    response = client.get("/api/v1/projects", params={"limit": 100_000}, headers=_bearer(admin_key))
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["parameter"] == "limit"


def test_401_says_how_to_authenticate(client: TestClient) -> None:
    response = client.get("/api/v1/projects")
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_unknown_route_is_a_404_problem(client: TestClient) -> None:
    for path in ("/nowhere", "/api/v1/nowhere", "/api/v2/projects"):
        assert_problem(client.get(path), 404, "not-found")


def test_405_lists_every_method_the_path_has(client: TestClient, admin_key: str) -> None:
    response = client.delete("/api/v1/projects", headers=_bearer(admin_key))
    assert_problem(response, 405, "method-not-allowed")
    allowed = {method.strip() for method in response.headers["Allow"].split(",")}
    assert allowed == {"GET", "HEAD", "POST"}


def test_412_tells_the_current_etag(client: TestClient, admin_key: str) -> None:
    current = client.get("/api/v1/projects/default", headers=_bearer(admin_key)).headers["ETag"]
    response = client.patch(
        "/api/v1/projects/default",
        json={"name": "Renamed"},
        headers={**_bearer(admin_key), "If-Match": '"999"'},
    )
    problem = assert_problem(response, 412, "precondition-failed")
    assert problem["current_etag"] == current


def test_json_with_a_charset_or_a_json_suffix_is_accepted(
    client: TestClient, admin_key: str
) -> None:
    for index, content_type in enumerate(
        ["application/json; charset=utf-8", "application/merge-patch+json"]
    ):
        response = client.post(
            "/api/v1/projects",
            content=f'{{"key": "p{index}", "name": "P"}}'.encode(),
            headers={**_bearer(admin_key), "Content-Type": content_type},
        )
        assert response.status_code == 201, response.text


def test_a_body_at_the_limit_is_accepted(client: TestClient, admin_key: str) -> None:
    body = b'{"key": "padded", "name": "Padded"}'
    padded = body[:-1] + b" " * (MAX_BODY - len(body)) + b"}"
    assert len(padded) == MAX_BODY
    response = client.post(
        "/api/v1/projects", content=padded, headers={**_bearer(admin_key), **JSON}
    )
    assert response.status_code == 201, response.text


@pytest.fixture
def exploding_app(app: FastAPI) -> FastAPI:
    """The app plus a route that writes, then fails the way a bug would."""

    def explode(db: Annotated[Database, Depends(get_db)]) -> None:
        with db.write_session() as session:
            projects.create_project(session, TEST_ACTOR, key="half-done", name="Half done")
            raise RuntimeError("internal detail 8c1f: connection string and stack")

    app.add_api_route("/api/v1/test/explode", explode, methods=["POST"])
    return app


def test_500_hides_internals_logs_them_with_the_request_id_and_changes_nothing(
    exploding_app: FastAPI, admin_key: str
) -> None:
    with TestClient(exploding_app, raise_server_exceptions=False) as client:
        before = _state(client, admin_key)
        with captured_logs() as logs:
            response = client.post("/api/v1/test/explode", headers=_bearer(admin_key))
        after = _state(client, admin_key)
    problem = assert_problem(response, 500, "internal-error")
    request_id = response.headers["X-Request-ID"]
    assert problem["request_id"] == request_id
    assert request_id in problem["detail"]
    assert "8c1f" not in response.text
    assert "RuntimeError" not in response.text
    assert after == before
    [logged] = [e for e in logs.events() if e["event"] == "unhandled error"]
    assert logged["request_id"] == request_id
    assert logged["level"] == "error"
    assert "RuntimeError: internal detail 8c1f" in logged["exception"]


def test_each_problem_type_is_documented_at_its_uri(client: TestClient) -> None:
    for kind in ProblemType:
        response = client.get(kind.uri)
        assert response.status_code == 200, response.text
        status, title = STATUS_TITLES[kind]
        assert response.json() == {
            "type": kind.uri,
            "status": status,
            "title": title,
            "description": DESCRIPTIONS[kind],
        }


def test_an_unknown_problem_type_is_not_found(client: TestClient) -> None:
    assert_problem(client.get("/problems/no-such-problem"), 404, "not-found")
