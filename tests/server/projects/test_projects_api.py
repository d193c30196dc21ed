"""/api/v1/projects: create, read, list by cursor, update with If-Match, delete."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from fastapi.testclient import TestClient

from interlock.server.auth.roles import Role
from interlock.server.pagination import MAX_PAGE_SIZE
from tests.helpers import assert_problem
from tests.server.projects.conftest import MakeKey

PROJECTS = "/api/v1/projects"
DEFAULT_ENVIRONMENTS = ["development", "staging", "production"]


def create(client: TestClient, key: str, **extra: Any) -> dict[str, Any]:
    response = client.post(PROJECTS, json={"key": key, "name": key.title(), **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def all_keys(client: TestClient) -> list[str]:
    response = client.get(PROJECTS, params={"limit": MAX_PAGE_SIZE})
    assert response.status_code == 200, response.text
    return [p["key"] for p in response.json()["items"]]


def test_a_new_project_gets_development_staging_and_production(admin: TestClient) -> None:
    response = admin.post(PROJECTS, json={"key": "shop", "name": "Shop"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["key"], body["name"], body["description"], body["version"]) == (
        "shop",
        "Shop",
        "",
        1,
    )
    assert [e["key"] for e in body["environments"]] == DEFAULT_ENVIRONMENTS
    assert [e["position"] for e in body["environments"]] == [0, 1, 2]
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == "/api/v1/projects/shop"
    assert admin.get(response.headers["Location"]).json() == body


def test_a_project_created_with_its_environments_gets_exactly_those(admin: TestClient) -> None:
    body = create(
        admin, "shop", environments=[{"key": "qa", "name": "QA"}, {"key": "live", "name": "Live"}]
    )
    assert [(e["key"], e["name"], e["position"]) for e in body["environments"]] == [
        ("qa", "QA", 0),
        ("live", "Live", 1),
    ]


def test_creating_a_project_with_an_existing_key_is_a_conflict(admin: TestClient) -> None:
    create(admin, "shop")
    response = admin.post(PROJECTS, json={"key": "shop", "name": "Other"})
    assert_problem(response, 409, "conflict")
    assert admin.get(f"{PROJECTS}/shop").json()["name"] == "Shop"


def test_a_project_whose_environments_repeat_a_key_is_a_conflict_and_is_not_created(
    admin: TestClient,
) -> None:
    twice = [{"key": "qa", "name": "QA"}, {"key": "qa", "name": "QA again"}]
    response = admin.post(PROJECTS, json={"key": "shop", "name": "Shop", "environments": twice})
    assert_problem(response, 409, "conflict")
    assert "shop" not in all_keys(admin)


INVALID_KEYS = [
    pytest.param("Shop", id="uppercase"),
    pytest.param("my shop", id="space"),
    pytest.param("s" * 65, id="too-long"),
    pytest.param("", id="empty"),
    pytest.param("-shop", id="leading-dash"),
    pytest.param("shop\n", id="trailing-newline"),
    pytest.param("shöp", id="non-ascii"),
    pytest.param("a/b", id="slash"),
    pytest.param(7, id="number"),
    pytest.param(None, id="null"),
]


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_a_project_key_that_is_not_a_slug_is_refused_at_key(admin: TestClient, key: Any) -> None:
    before = all_keys(admin)
    body = assert_problem(
        admin.post(PROJECTS, json={"key": key, "name": "X"}), 422, "validation-error"
    )
    assert [e["pointer"] for e in body["errors"]] == ["/key"]
    assert all_keys(admin) == before


def test_the_longest_slug_is_accepted(admin: TestClient) -> None:
    assert create(admin, "s" * 64)["key"] == "s" * 64


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"key": "shop", "name": ""}, "/name"),
        ({"key": "shop", "name": "   "}, "/name"),
        ({"key": "shop", "name": "n" * 201}, "/name"),
        ({"key": "shop", "name": "a\u0000b"}, "/name"),
        ({"key": "shop", "name": "two\nlines"}, "/name"),
        ({"key": "shop", "name": "Shop", "description": "a\u0000b"}, "/description"),
        ({"key": "shop"}, "/name"),
        ({"name": "Shop"}, "/key"),
        ({"key": "shop", "name": "Shop", "description": "d" * 2001}, "/description"),
        ({"key": "shop", "name": "Shop", "owner": "me"}, "/owner"),
        ({"key": "shop", "name": "Shop", "environments": []}, "/environments"),
        (
            {"key": "shop", "name": "Shop", "environments": [{"key": "QA", "name": "QA"}]},
            "/environments/0/key",
        ),
        (
            {"key": "shop", "name": "Shop", "environments": [{"key": "qa", "name": "QA", "x": 1}]},
            "/environments/0/x",
        ),
    ],
)
def test_an_invalid_project_is_refused_with_a_pointer_and_nothing_is_created(
    admin: TestClient, body: dict[str, Any], pointer: str
) -> None:
    problem = assert_problem(admin.post(PROJECTS, json=body), 422, "validation-error")
    assert pointer in [e["pointer"] for e in problem["errors"]]
    assert "shop" not in all_keys(admin)


def test_reading_a_project_sends_its_etag(admin: TestClient) -> None:
    response = admin.get(f"{PROJECTS}/default")
    assert response.status_code == 200
    assert response.headers["ETag"] == f'"{response.json()["version"]}"'


def test_an_unknown_project_is_not_found(admin: TestClient) -> None:
    assert_problem(admin.get(f"{PROJECTS}/nowhere"), 404, "not-found")


def test_walking_the_pages_gives_every_project_once_in_creation_order(admin: TestClient) -> None:
    for number in range(7):
        create(admin, f"p{number}")
    expected = ["default"] + [f"p{n}" for n in range(7)]

    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        response = admin.get(PROJECTS, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 3
        seen.extend(p["key"] for p in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == expected
    assert pages == 3


def test_a_project_created_while_walking_the_pages_shows_up_at_the_end(admin: TestClient) -> None:
    for number in range(3):
        create(admin, f"p{number}")
    first = admin.get(PROJECTS, params={"limit": 2}).json()
    create(admin, "late")
    rest = admin.get(PROJECTS, params={"limit": 200, "cursor": first["next_cursor"]}).json()
    keys = [p["key"] for p in first["items"] + rest["items"]]
    assert keys == ["default", "p0", "p1", "p2", "late"]


@pytest.mark.parametrize(
    ("limit", "status"), [(0, 422), (-1, 422), (MAX_PAGE_SIZE, 200), (MAX_PAGE_SIZE + 1, 422)]
)
def test_the_page_size_is_capped(admin: TestClient, limit: int, status: int) -> None:
    response = admin.get(PROJECTS, params={"limit": limit})
    assert response.status_code == status, response.text
    if status == 422:
        body = assert_problem(response, 422, "validation-error")
        assert body["errors"][0]["parameter"] == "limit"


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param("!!!", id="not-base64"),
        pytest.param(_b64("not json"), id="not-json"),
        pytest.param(_b64("[1]"), id="not-an-object"),
        pytest.param(_b64('{"before": 1}'), id="wrong-field"),
        pytest.param(_b64('{"after": "1"}'), id="string"),
        pytest.param(_b64('{"after": 1.5}'), id="float"),
        pytest.param(_b64('{"after": true}'), id="bool"),
        pytest.param(_b64('{"after": 1e999}'), id="infinity"),
        pytest.param(_b64('{"after": 100000000000000000000000000000}'), id="huge"),
        pytest.param(_b64('{"after": -1}'), id="negative"),
    ],
)
def test_a_cursor_this_server_did_not_give_out_is_a_bad_request(
    admin: TestClient, cursor: str
) -> None:
    assert_problem(admin.get(PROJECTS, params={"cursor": cursor}), 400, "bad-request")


def test_updating_without_if_match_is_refused_with_428(admin: TestClient) -> None:
    response = admin.patch(f"{PROJECTS}/default", json={"name": "New"})
    assert_problem(response, 428, "precondition-required")
    assert admin.get(f"{PROJECTS}/default").json()["name"] == "Default"


def test_updating_with_a_stale_etag_is_refused_with_412_and_the_current_etag(
    admin: TestClient,
) -> None:
    stale = admin.get(f"{PROJECTS}/default").headers["ETag"]
    first = admin.patch(f"{PROJECTS}/default", json={"name": "One"}, headers={"If-Match": stale})
    assert first.status_code == 200, first.text

    response = admin.patch(f"{PROJECTS}/default", json={"name": "Two"}, headers={"If-Match": stale})
    body = assert_problem(response, 412, "precondition-failed")
    assert body["current_etag"] == first.headers["ETag"] == '"2"'
    assert response.headers["ETag"] == '"2"'
    assert admin.get(f"{PROJECTS}/default").json()["name"] == "One"


@pytest.mark.parametrize("if_match", ['"1"', "*", '"7", "1"', 'W/"1"'])
def test_a_matching_if_match_updates_and_bumps_the_version(
    admin: TestClient, if_match: str
) -> None:
    response = admin.patch(
        f"{PROJECTS}/default",
        json={"name": "  Renamed ", "description": "What it is for.\nAnd why."},
        headers={"If-Match": if_match},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["description"], body["version"]) == (
        "Renamed",
        "What it is for.\nAnd why.",
        2,
    )
    assert response.headers["ETag"] == '"2"'
    assert admin.get(f"{PROJECTS}/default").headers["ETag"] == '"2"'


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"name": ""}, "/name"),
        ({"key": "renamed"}, "/key"),
        ({"description": "d" * 2001}, "/description"),
        ({"description": "\u0000"}, "/description"),
        ({"name": "tab\there"}, "/name"),
    ],
)
def test_an_invalid_update_is_refused_and_changes_nothing(
    admin: TestClient, body: dict[str, Any], pointer: str
) -> None:
    response = admin.patch(f"{PROJECTS}/default", json=body, headers={"If-Match": "*"})
    problem = assert_problem(response, 422, "validation-error")
    assert [e["pointer"] for e in problem["errors"]] == [pointer]
    after = admin.get(f"{PROJECTS}/default")
    assert (after.json()["name"], after.headers["ETag"]) == ("Default", '"1"')


def test_updating_an_unknown_project_is_not_found(admin: TestClient) -> None:
    response = admin.patch(f"{PROJECTS}/nowhere", json={"name": "X"}, headers={"If-Match": "*"})
    assert_problem(response, 404, "not-found")


def test_a_deleted_project_is_gone_with_its_keys(admin: TestClient, project_key: MakeKey) -> None:
    create(admin, "shop")
    scoped = project_key(Role.VIEWER, "shop")
    assert admin.get(f"{PROJECTS}/shop", headers=bearer(scoped)).status_code == 200

    response = admin.delete(f"{PROJECTS}/shop")
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(admin.get(f"{PROJECTS}/shop"), 404, "not-found")
    assert_problem(admin.delete(f"{PROJECTS}/shop"), 404, "not-found")
    assert_problem(admin.get(PROJECTS, headers=bearer(scoped)), 401, "unauthenticated")
    assert "shop" not in all_keys(admin)


def test_a_key_of_another_project_gets_404_as_if_the_project_did_not_exist(
    admin: TestClient, project_key: MakeKey
) -> None:
    create(admin, "mine")
    create(admin, "theirs")
    mine = bearer(project_key(Role.ADMIN, "mine"))
    requests = [
        ("GET", "{p}", None),
        ("PATCH", "{p}", {"name": "X"}),
        ("DELETE", "{p}", None),
        ("GET", "{p}/environments", None),
        ("POST", "{p}/environments", {"key": "qa", "name": "QA"}),
        ("GET", "{p}/environments/staging", None),
        ("PATCH", "{p}/environments/staging", {"name": "X"}),
        ("DELETE", "{p}/environments/staging", None),
    ]
    for method, template, body in requests:
        answers = []
        for project in ("theirs", "nowhere"):
            response = admin.request(
                method,
                f"{PROJECTS}/{template.format(p=project)}",
                json=body,
                headers={**mine, "If-Match": "*"},
            )
            problem = assert_problem(response, 404, "not-found")
            answers.append(problem["detail"].replace(project, "?"))
        assert answers[0] == answers[1], (method, template)
    theirs = admin.get(f"{PROJECTS}/theirs").json()
    assert (theirs["version"], len(theirs["environments"])) == (1, 3)


def test_a_key_of_the_project_that_lacks_the_role_gets_403(
    admin: TestClient, project_key: MakeKey
) -> None:
    create(admin, "mine")
    viewer = {**bearer(project_key(Role.VIEWER, "mine")), "If-Match": "*"}
    assert admin.get(f"{PROJECTS}/mine", headers=viewer).status_code == 200
    assert_problem(
        admin.patch(f"{PROJECTS}/mine", json={"name": "X"}, headers=viewer), 403, "forbidden"
    )
    assert_problem(admin.delete(f"{PROJECTS}/mine", headers=viewer), 403, "forbidden")


def test_only_an_instance_admin_creates_projects(admin: TestClient, project_key: MakeKey) -> None:
    create(admin, "mine")
    scoped_admin = bearer(project_key(Role.ADMIN, "mine"))
    response = admin.post(PROJECTS, json={"key": "more", "name": "More"}, headers=scoped_admin)
    assert_problem(response, 403, "forbidden")
    assert "more" not in all_keys(admin)


def test_a_project_scoped_key_lists_only_its_project(
    admin: TestClient, project_key: MakeKey
) -> None:
    for key in ("a", "b", "c"):
        create(admin, key)
    scoped = bearer(project_key(Role.VIEWER, "b"))
    response = admin.get(PROJECTS, headers=scoped)
    assert response.status_code == 200, response.text
    assert [p["key"] for p in response.json()["items"]] == ["b"]
    assert all_keys(admin) == ["default", "a", "b", "c"]
