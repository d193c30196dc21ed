from fastapi.testclient import TestClient

from tests.helpers import assert_problem


def test_a_new_instance_has_the_default_project_with_three_environments(admin: TestClient) -> None:
    response = admin.get("/api/v1/projects/default")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [e["key"] for e in body["environments"]] == ["development", "staging", "production"]


def test_unknown_route_is_a_problem(client: TestClient) -> None:
    assert_problem(client.get("/nowhere"), 404, "not-found")
