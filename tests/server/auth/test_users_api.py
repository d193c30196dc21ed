"""UI accounts through /api/v1/users: instance admins only."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from interlock.server.auth.roles import Role
from interlock.server.db.engine import Database
from tests.helpers import assert_problem
from tests.server.auth.support import PASSWORD, bearer, make_key, make_user, raw_rows


def new_user(client: TestClient, **body: Any) -> Any:
    body.setdefault("email", "ada@example.com")
    body.setdefault("password", PASSWORD)
    return client.post("/api/v1/users", json=body)


def login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def user_count(admin: TestClient) -> int:
    return len(admin.get("/api/v1/users", params={"limit": 200}).json()["items"])


def test_an_admin_creates_a_user_with_a_normalized_email(admin: TestClient, db: Database) -> None:
    response = new_user(admin, email="  Ada.Lovelace@Example.COM ", name="Ada")
    assert response.status_code == 201, response.text
    user = response.json()
    assert (user["email"], user["name"], user["active"]) == (
        "ada.lovelace@example.com",
        "Ada",
        True,
    )
    assert user["roles"] == []
    assert admin.get(f"/api/v1/users/{user['id']}").json() == user

    row = next(r for r in raw_rows(db, "users") if "ada.lovelace@example.com" in r)
    assert any(str(cell).startswith("$argon2id$") for cell in row)
    assert not any(PASSWORD in str(cell) for cell in row)


def test_an_email_is_taken_whatever_its_case(admin: TestClient) -> None:
    assert new_user(admin, email="ada@example.com").status_code == 201
    count = user_count(admin)
    assert_problem(new_user(admin, email="ADA@example.com"), 409, "conflict")
    assert user_count(admin) == count


BAD_USERS: list[tuple[dict[str, Any], str]] = [
    ({"password": "elevenchars"}, "/password"),
    ({"email": "not-an-email"}, "/email"),
    ({"email": "two words@example.com"}, "/email"),
    ({"roles": [{"role": "owner"}]}, "/roles/0/role"),
    ({"roles": [{"role": "viewer", "project": "nowhere"}]}, "/roles/0/project"),
    ({"roles": [{"role": "viewer"}, {"role": "editor", "project": "x"}]}, "/roles/1/project"),
    (
        {"roles": [{"role": "viewer", "project": "default", "environment": "nowhere"}]},
        "/roles/0/environment",
    ),
    ({"roles": [{"role": "viewer", "environment": "staging"}]}, "/roles/0/environment"),
    ({"roles": [{"role": "sdk-server", "project": "default"}]}, "/roles/0/role"),
    ({"roles": [{"role": "sdk-client"}]}, "/roles/0/role"),
    ({"roles": [{"role": "viewer"}, {"role": "admin"}]}, "/roles/1"),
    ({"is_admin": True}, "/is_admin"),
    ({"email": "nul\x00@example.com"}, "/email"),
    ({"name": "nul\x00"}, "/name"),
]


def test_a_bad_user_is_422_pointing_at_the_field(admin: TestClient) -> None:
    count = user_count(admin)
    for body, pointer in BAD_USERS:
        problem = assert_problem(new_user(admin, **body), 422, "validation-error")
        assert pointer in [e.get("pointer") for e in problem["errors"]], (body, problem)
    assert user_count(admin) == count


def test_a_user_holds_roles_on_the_instance_a_project_or_an_environment(
    admin: TestClient,
) -> None:
    roles = [
        {"role": "viewer", "project": None, "environment": None},
        {"role": "admin", "project": "default", "environment": None},
        {"role": "editor", "project": "default", "environment": "staging"},
    ]
    response = new_user(admin, roles=roles)
    assert response.status_code == 201, response.text
    assert response.json()["roles"] == roles

    me = login(admin, "ada@example.com")
    assert me.status_code == 200, me.text
    assert me.json()["user"]["roles"] == roles


def test_an_editor_on_staging_may_change_staging_and_not_production(
    admin: TestClient, db: Database
) -> None:
    make_user(db, "ed@example.com", Role.EDITOR, "default", "staging")
    assert login(admin, "ed@example.com").status_code == 200
    del admin.headers["Authorization"]
    me = admin.get("/api/v1/auth/me").json()
    assert me["roles"] == [{"role": "editor", "project": "default", "environment": "staging"}]
    # Reading the project is fine; changing it is not.
    assert admin.get("/api/v1/projects/default").status_code == 200
    csrf = {"X-CSRF-Token": admin.cookies["interlock_csrf"]}
    response = admin.post(
        "/api/v1/projects/default/environments", json={"key": "qa", "name": "QA"}, headers=csrf
    )
    assert_problem(response, 403, "forbidden")


def test_only_instance_admins_manage_users(client: TestClient, db: Database) -> None:
    user_id = make_user(db, "someone@example.com")
    for role, project in [(Role.ADMIN, "default"), (Role.EDITOR, "default")]:
        _, value = make_key(db, role, project)
        headers = bearer(value)
        assert_problem(client.get("/api/v1/users", headers=headers), 403, "forbidden")
        assert_problem(client.get(f"/api/v1/users/{user_id}", headers=headers), 403, "forbidden")
        response = client.post(
            "/api/v1/users", json={"email": "x@example.com", "password": PASSWORD}, headers=headers
        )
        assert_problem(response, 403, "forbidden")
        response = client.patch(f"/api/v1/users/{user_id}", json={"active": False}, headers=headers)
        assert_problem(response, 403, "forbidden")


def test_an_unknown_user_is_404(admin: TestClient) -> None:
    assert_problem(admin.get("/api/v1/users/999999"), 404, "not-found")
    assert_problem(admin.patch("/api/v1/users/999999", json={"name": "x"}), 404, "not-found")


def test_an_update_replaces_name_and_roles(admin: TestClient) -> None:
    user_id = new_user(admin, roles=[{"role": "viewer"}]).json()["id"]
    roles = [{"role": "editor", "project": "default", "environment": "production"}]
    response = admin.patch(f"/api/v1/users/{user_id}", json={"name": "Ada L.", "roles": roles})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Ada L."
    assert response.json()["roles"] == roles


def test_a_bad_update_changes_nothing(admin: TestClient) -> None:
    before = new_user(admin, name="Ada", roles=[{"role": "viewer"}]).json()
    for body, pointer in [
        ({"name": "B", "roles": [{"role": "viewer", "project": "nowhere"}]}, "/roles/0/project"),
        ({"name": "B", "roles": [{"role": "sdk-client", "project": "default"}]}, "/roles/0/role"),
        ({"name": "B", "password": "short"}, "/password"),
        ({"name": "B", "email": "b@example.com"}, "/email"),
        ({"name": "nul\x00"}, "/name"),
    ]:
        response = admin.patch(f"/api/v1/users/{before['id']}", json=body)
        problem = assert_problem(response, 422, "validation-error")
        assert pointer in [e.get("pointer") for e in problem["errors"]], (body, problem)
    assert admin.get(f"/api/v1/users/{before['id']}").json() == before


def test_deactivating_a_user_ends_their_sessions(admin: TestClient, db: Database) -> None:
    user_id = make_user(db, "ada@example.com")
    user = TestClient(admin.app)
    assert login(user, "ada@example.com").status_code == 200
    assert user.get("/api/v1/auth/me").status_code == 200

    response = admin.patch(f"/api/v1/users/{user_id}", json={"active": False})
    assert response.status_code == 200 and response.json()["active"] is False
    assert_problem(user.get("/api/v1/auth/me"), 401, "unauthenticated")
    assert_problem(login(user, "ada@example.com"), 401, "unauthenticated")
    assert raw_rows(db, "login_sessions") == []


def test_changing_a_password_ends_sessions_and_only_the_new_one_works(
    admin: TestClient, db: Database
) -> None:
    user_id = make_user(db, "ada@example.com")
    user = TestClient(admin.app)
    assert login(user, "ada@example.com").status_code == 200

    new_password = "a much better passphrase"
    response = admin.patch(f"/api/v1/users/{user_id}", json={"password": new_password})
    assert response.status_code == 200, response.text
    assert_problem(user.get("/api/v1/auth/me"), 401, "unauthenticated")
    assert_problem(login(user, "ada@example.com"), 401, "unauthenticated")
    assert login(user, "ada@example.com", new_password).status_code == 200


def test_renaming_a_user_keeps_their_sessions(admin: TestClient, db: Database) -> None:
    user_id = make_user(db, "ada@example.com")
    user = TestClient(admin.app)
    assert login(user, "ada@example.com").status_code == 200
    assert admin.patch(f"/api/v1/users/{user_id}", json={"name": "Ada"}).status_code == 200
    assert user.get("/api/v1/auth/me").status_code == 200


def test_the_user_list_is_paginated(admin: TestClient, db: Database) -> None:
    for index in range(3):
        make_user(db, f"user{index}@example.com")
    first = admin.get("/api/v1/users", params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = admin.get("/api/v1/users", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    emails = [u["email"] for u in first["items"] + rest["items"]]
    assert len(emails) == len(set(emails)) == 4  # the first admin and three more
