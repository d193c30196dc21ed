"""/api/v1/projects/{project}/environments: ordered, densely numbered, keyed by slugs."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import assert_problem

ENVIRONMENTS = "/api/v1/projects/default/environments"


def order(client: TestClient) -> list[tuple[str, int]]:
    """(key, position) of every environment of `default`, in the order the API lists them."""
    response = client.get(ENVIRONMENTS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    return [(e["key"], e["position"]) for e in body["items"]]


def versions(client: TestClient) -> dict[str, int]:
    return {e["key"]: e["version"] for e in client.get(ENVIRONMENTS).json()["items"]}


def create(client: TestClient, key: str, **extra: Any) -> dict[str, Any]:
    response = client.post(ENVIRONMENTS, json={"key": key, "name": key.upper(), **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def move(client: TestClient, key: str, position: int) -> dict[str, Any]:
    response = client.patch(
        f"{ENVIRONMENTS}/{key}", json={"position": position}, headers={"If-Match": "*"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_environments_are_listed_in_their_order(admin: TestClient) -> None:
    assert order(admin) == [("development", 0), ("staging", 1), ("production", 2)]


def test_a_new_environment_goes_last_by_default(admin: TestClient) -> None:
    response = admin.post(ENVIRONMENTS, json={"key": "qa", "name": "QA"})
    assert response.status_code == 201, response.text
    assert response.json()["position"] == 3
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"{ENVIRONMENTS}/qa"
    assert admin.get(response.headers["Location"]).json() == response.json()
    assert order(admin)[-1] == ("qa", 3)


def test_an_environment_inserted_at_a_place_shifts_the_ones_after_it(admin: TestClient) -> None:
    before = versions(admin)
    assert create(admin, "qa", position=1)["position"] == 1
    assert order(admin) == [("development", 0), ("qa", 1), ("staging", 2), ("production", 3)]
    after = versions(admin)
    # Those whose position changed have a new version (and ETag); the one before did not move.
    assert after["development"] == before["development"]
    assert after["staging"] == before["staging"] + 1
    assert after["production"] == before["production"] + 1


def test_a_position_past_the_end_puts_the_environment_last(admin: TestClient) -> None:
    assert create(admin, "qa", position=99)["position"] == 3
    assert order(admin)[-1] == ("qa", 3)


@pytest.mark.parametrize(
    ("key", "position", "expected"),
    [
        ("production", 0, ["production", "development", "staging"]),
        ("development", 2, ["staging", "production", "development"]),
        ("development", 50, ["staging", "production", "development"]),
        ("staging", 1, ["development", "staging", "production"]),
    ],
)
def test_moving_an_environment_renumbers_all_densely(
    admin: TestClient, key: str, position: int, expected: list[str]
) -> None:
    body = move(admin, key, position)
    assert body["position"] == expected.index(key)
    assert body["version"] == 2
    assert order(admin) == [(k, n) for n, k in enumerate(expected)]


def test_renaming_an_environment_bumps_its_version_and_etag(admin: TestClient) -> None:
    etag = admin.get(f"{ENVIRONMENTS}/staging").headers["ETag"]
    response = admin.patch(
        f"{ENVIRONMENTS}/staging", json={"name": "Pre-production"}, headers={"If-Match": etag}
    )
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["version"]) == ("Pre-production", 2)
    assert response.headers["ETag"] == '"2"' != etag
    assert admin.get(f"{ENVIRONMENTS}/staging").headers["ETag"] == '"2"'


def test_changing_an_environment_needs_if_match(admin: TestClient) -> None:
    response = admin.patch(f"{ENVIRONMENTS}/staging", json={"position": 0})
    assert_problem(response, 428, "precondition-required")
    assert order(admin)[0] == ("development", 0)


def test_changing_an_environment_with_a_stale_etag_is_refused(admin: TestClient) -> None:
    stale = admin.get(f"{ENVIRONMENTS}/staging").headers["ETag"]
    move(admin, "production", 0)  # staging moves too, so its ETag changes
    response = admin.patch(
        f"{ENVIRONMENTS}/staging", json={"name": "X"}, headers={"If-Match": stale}
    )
    body = assert_problem(response, 412, "precondition-failed")
    assert body["current_etag"] == response.headers["ETag"] == '"2"'
    assert admin.get(f"{ENVIRONMENTS}/staging").json()["name"] == "Staging"


def test_deleting_an_environment_renumbers_the_rest_densely(admin: TestClient) -> None:
    before = versions(admin)
    response = admin.delete(f"{ENVIRONMENTS}/development")
    assert response.status_code == 204
    assert order(admin) == [("staging", 0), ("production", 1)]
    assert versions(admin) == {k: before[k] + 1 for k in ("staging", "production")}
    assert_problem(admin.get(f"{ENVIRONMENTS}/development"), 404, "not-found")


def test_the_last_environment_cannot_be_deleted(admin: TestClient) -> None:
    assert admin.delete(f"{ENVIRONMENTS}/development").status_code == 204
    assert admin.delete(f"{ENVIRONMENTS}/staging").status_code == 204
    assert_problem(admin.delete(f"{ENVIRONMENTS}/production"), 409, "conflict")
    assert order(admin) == [("production", 0)]


def test_an_existing_environment_key_is_a_conflict(admin: TestClient) -> None:
    response = admin.post(ENVIRONMENTS, json={"key": "staging", "name": "Another"})
    assert_problem(response, 409, "conflict")
    assert admin.get(f"{ENVIRONMENTS}/staging").json()["name"] == "Staging"
    assert len(order(admin)) == 3


def test_the_same_environment_key_may_exist_in_two_projects(admin: TestClient) -> None:
    assert admin.post("/api/v1/projects", json={"key": "shop", "name": "Shop"}).status_code == 201
    create(admin, "qa")
    response = admin.post(
        "/api/v1/projects/shop/environments", json={"key": "qa", "name": "Shop QA"}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("QA", id="uppercase"),
        pytest.param("q a", id="space"),
        pytest.param("q" * 65, id="too-long"),
        pytest.param("", id="empty"),
        pytest.param("_qa", id="leading-underscore"),
        pytest.param("qa.", id="dot"),
        pytest.param(["qa"], id="list"),
    ],
)
def test_an_environment_key_that_is_not_a_slug_is_refused_at_key(
    admin: TestClient, key: Any
) -> None:
    response = admin.post(ENVIRONMENTS, json={"key": key, "name": "QA"})
    body = assert_problem(response, 422, "validation-error")
    assert [e["pointer"] for e in body["errors"]] == ["/key"]
    assert len(order(admin)) == 3


@pytest.mark.parametrize(
    ("method", "path", "body", "pointer"),
    [
        ("POST", "", {"key": "qa", "name": "QA", "color": "red"}, "/color"),
        ("POST", "", {"key": "qa", "name": ""}, "/name"),
        ("POST", "", {"key": "qa", "name": "Q\u0000A"}, "/name"),
        ("POST", "", {"key": "qa", "name": "QA", "position": -1}, "/position"),
        ("POST", "", {"key": "qa", "name": "QA", "position": "first"}, "/position"),
        ("PATCH", "/staging", {"key": "renamed"}, "/key"),
        ("PATCH", "/staging", {"position": -1}, "/position"),
        ("PATCH", "/staging", {"name": "n" * 201}, "/name"),
        ("PATCH", "/staging", {"name": "two\nlines"}, "/name"),
    ],
)
def test_an_invalid_environment_request_is_refused_and_changes_nothing(
    admin: TestClient, method: str, path: str, body: dict[str, Any], pointer: str
) -> None:
    before = admin.get(ENVIRONMENTS).json()
    response = admin.request(method, ENVIRONMENTS + path, json=body, headers={"If-Match": "*"})
    problem = assert_problem(response, 422, "validation-error")
    assert [e["pointer"] for e in problem["errors"]] == [pointer]
    assert admin.get(ENVIRONMENTS).json() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/projects/nowhere/environments"),
        ("POST", "/api/v1/projects/nowhere/environments"),
        ("GET", f"{ENVIRONMENTS}/nowhere"),
        ("PATCH", f"{ENVIRONMENTS}/nowhere"),
        ("DELETE", f"{ENVIRONMENTS}/nowhere"),
    ],
)
def test_an_unknown_project_or_environment_is_not_found(
    admin: TestClient, method: str, path: str
) -> None:
    body = {"key": "qa", "name": "QA"} if method == "POST" else {"name": "X"}
    response = admin.request(method, path, json=body, headers={"If-Match": "*"})
    assert_problem(response, 404, "not-found")
    assert len(order(admin)) == 3
