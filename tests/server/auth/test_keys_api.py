"""API keys through /api/v1/keys: creation, scope, expiry, revocation, last use, who manages."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient

from interlock.server.auth.credentials import digest, looks_like_api_key
from interlock.server.auth.roles import Role
from interlock.server.db.base import utcnow
from interlock.server.db.engine import Database
from tests.helpers import assert_problem
from tests.server.auth.support import (
    bearer,
    key_row,
    make_key,
    make_project,
    raw_rows,
    set_key_times,
)


def create(client: TestClient, **body: Any) -> Any:
    body.setdefault("name", "ci")
    return client.post("/api/v1/keys", json=body)


def listed_ids(client: TestClient, **params: Any) -> list[int]:
    response = client.get("/api/v1/keys", params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


# ---------------------------------------------------------------- creation


def test_a_new_key_is_shown_once(admin: TestClient) -> None:
    response = create(admin, role="editor", project="default")
    assert response.status_code == 201, response.text
    created = response.json()
    assert looks_like_api_key(created["value"])
    assert created["value"].startswith("ilk_edt_")
    assert created["value"].startswith(created["hint"].rstrip("…"))

    again = admin.get(f"/api/v1/keys/{created['id']}")
    assert again.status_code == 200
    assert again.json()["value"] is None
    listed = admin.get("/api/v1/keys").json()["items"]
    assert [k["value"] for k in listed if k["id"] == created["id"]] == [None]


def test_an_sdk_client_key_is_public_and_shown_every_time(admin: TestClient) -> None:
    created = create(admin, role="sdk-client", project="default", environment="production").json()
    assert created["value"].startswith("ilk_cli_")
    assert admin.get(f"/api/v1/keys/{created['id']}").json()["value"] == created["value"]


def test_key_names_need_not_be_unique(admin: TestClient) -> None:
    first = create(admin, name="deploy bot", role="admin")
    second = create(admin, name="deploy bot", role="admin")
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert first.json()["value"] != second.json()["value"]


SCOPES: list[tuple[str, str | None, str | None]] = [
    ("admin", None, None),
    ("admin", "default", None),
    ("editor", "default", None),
    ("editor", "default", "staging"),
    ("viewer", "default", None),
    ("sdk-server", "default", "production"),
    ("sdk-client", "default", "development"),
]


def test_a_key_holds_the_role_and_scope_it_was_created_with(admin: TestClient) -> None:
    for role, project, environment in SCOPES:
        response = create(admin, role=role, project=project, environment=environment)
        assert response.status_code == 201, response.text
        created = response.json()
        scope = (created["role"], created["project"], created["environment"])
        assert scope == (role, project, environment)
        me = admin.get("/api/v1/auth/me", headers=bearer(created["value"]))
        assert me.status_code == 200, me.text
        assert me.json()["kind"] == "key"
        assert me.json()["roles"] == [
            {"role": role, "project": project, "environment": environment}
        ]


UNMAKEABLE: list[tuple[dict[str, Any], str]] = [
    ({"role": "sdk-server", "project": "default"}, "/environment"),
    ({"role": "sdk-client", "project": "default"}, "/environment"),
    ({"role": "sdk-server"}, "/environment"),
    ({"role": "editor"}, "/project"),
    ({"role": "viewer"}, "/project"),
    ({"role": "admin", "project": "nowhere"}, "/project"),
    ({"role": "editor", "project": "default", "environment": "nowhere"}, "/environment"),
    ({"role": "admin", "environment": "staging"}, "/environment"),
    ({"role": "owner", "project": "default"}, "/role"),
    ({"role": "admin", "name": ""}, "/name"),
    ({"role": "admin", "expires_at": "2000-01-01T00:00:00Z"}, "/expires_at"),
    ({"role": "admin", "expires_at": "not a date"}, "/expires_at"),
    ({"role": "admin", "expires_at": "9999-12-31T23:00:00-05:00"}, "/expires_at"),
    ({"role": "admin", "name": "nul\x00name"}, "/name"),
]


def test_a_key_that_cannot_be_made_is_422_pointing_at_the_field(admin: TestClient) -> None:
    before = listed_ids(admin, include_revoked=True)
    for body, pointer in UNMAKEABLE:
        problem = assert_problem(create(admin, **body), 422, "validation-error")
        assert pointer in [error.get("pointer") for error in problem["errors"]], (body, problem)
    assert listed_ids(admin, include_revoked=True) == before


def test_times_without_a_utc_offset_or_beyond_the_calendar_are_refused(
    admin: TestClient, db: Database
) -> None:
    problem = assert_problem(
        create(admin, role="admin", expires_at="2999-01-01T00:00:00"), 422, "validation-error"
    )
    assert problem["errors"][0]["pointer"] == "/expires_at"
    key_id, _ = make_key(db, Role.VIEWER, "default")
    for at in ["2999-01-01T00:00:00", "9999-12-31T23:00:00-05:00"]:
        response = admin.post(f"/api/v1/keys/{key_id}/revoke", json={"at": at})
        assert assert_problem(response, 422, "validation-error")["errors"][0]["pointer"] == "/at"
    assert key_row(db, key_id).revoked_at is None


# ---------------------------------------------------------------- expiry and revocation


def test_a_key_works_until_it_expires(client: TestClient, db: Database) -> None:
    key_id, value = make_key(db, Role.VIEWER, "default", expires_at=utcnow() + timedelta(hours=1))
    assert client.get("/api/v1/projects", headers=bearer(value)).status_code == 200
    set_key_times(db, key_id, expires_at=utcnow() - timedelta(seconds=1))
    assert_problem(client.get("/api/v1/projects", headers=bearer(value)), 401, "unauthenticated")


def test_a_revoked_key_is_refused_from_its_next_request(admin: TestClient, db: Database) -> None:
    key_id, value = make_key(db, Role.VIEWER, "default")
    assert admin.get("/api/v1/projects", headers=bearer(value)).status_code == 200
    revoked = admin.post(f"/api/v1/keys/{key_id}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert_problem(admin.get("/api/v1/projects", headers=bearer(value)), 401, "unauthenticated")


def test_a_key_revoked_at_a_later_time_works_until_then(admin: TestClient, db: Database) -> None:
    key_id, value = make_key(db, Role.VIEWER, "default")
    at = (utcnow() + timedelta(hours=1)).isoformat()
    response = admin.post(f"/api/v1/keys/{key_id}/revoke", json={"at": at})
    assert response.status_code == 200, response.text
    assert response.json()["revoked_at"] is not None
    # The replacement is rolled out meanwhile: the old key still works.
    assert admin.get("/api/v1/projects", headers=bearer(value)).status_code == 200
    assert key_id in listed_ids(admin)

    set_key_times(db, key_id, revoked_at=utcnow() - timedelta(seconds=1))
    assert_problem(admin.get("/api/v1/projects", headers=bearer(value)), 401, "unauthenticated")


def test_a_key_due_for_revocation_can_be_revoked_now(admin: TestClient, db: Database) -> None:
    key_id, value = make_key(db, Role.VIEWER, "default")
    later = (utcnow() + timedelta(hours=1)).isoformat()
    assert admin.post(f"/api/v1/keys/{key_id}/revoke", json={"at": later}).status_code == 200
    assert admin.post(f"/api/v1/keys/{key_id}/revoke").status_code == 200
    assert_problem(admin.get("/api/v1/projects", headers=bearer(value)), 401, "unauthenticated")


def test_revoking_a_revoked_key_is_a_conflict_and_changes_nothing(
    admin: TestClient, db: Database
) -> None:
    key_id, _ = make_key(db, Role.VIEWER, "default")
    first = admin.post(f"/api/v1/keys/{key_id}/revoke").json()["revoked_at"]
    assert_problem(admin.post(f"/api/v1/keys/{key_id}/revoke"), 409, "conflict")
    assert admin.get(f"/api/v1/keys/{key_id}").json()["revoked_at"] == first


def test_an_unknown_key_id_is_404(admin: TestClient) -> None:
    assert_problem(admin.get("/api/v1/keys/999999"), 404, "not-found")
    assert_problem(admin.post("/api/v1/keys/999999/revoke"), 404, "not-found")


def test_the_list_hides_revoked_keys_unless_asked(admin: TestClient, db: Database) -> None:
    live, _ = make_key(db, Role.VIEWER, "default")
    revoked, _ = make_key(db, Role.VIEWER, "default")
    due_later, _ = make_key(db, Role.VIEWER, "default")
    admin.post(f"/api/v1/keys/{revoked}/revoke")
    later = (utcnow() + timedelta(hours=1)).isoformat()
    admin.post(f"/api/v1/keys/{due_later}/revoke", json={"at": later})

    shown = listed_ids(admin)
    assert live in shown and due_later in shown and revoked not in shown
    assert revoked in listed_ids(admin, include_revoked=True)


# ---------------------------------------------------------------- bad credentials


def test_a_missing_malformed_or_unknown_key_is_401(client: TestClient) -> None:
    for authorization in [
        "Bearer ilk_adm_" + "0" * 33,
        "Bearer not-a-key",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "ilk_adm_whatever",
    ]:
        response = client.get("/api/v1/projects", headers={"Authorization": authorization})
        assert_problem(response, 401, "unauthenticated")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_problem(client.get("/api/v1/projects"), 401, "unauthenticated")


def test_a_mistyped_key_is_refused(client: TestClient, db: Database) -> None:
    _, value = make_key(db, Role.ADMIN)
    mistyped = value[:-1] + ("A" if value[-1] != "A" else "B")
    assert_problem(client.get("/api/v1/projects", headers=bearer(mistyped)), 401, "unauthenticated")
    assert client.get("/api/v1/projects", headers=bearer(value)).status_code == 200


# ---------------------------------------------------------------- last use


def test_last_use_is_recorded_once_and_not_rewritten_within_a_minute(
    client: TestClient, db: Database
) -> None:
    key_id, value = make_key(db, Role.VIEWER, "default")
    assert key_row(db, key_id).last_used_at is None

    assert client.get("/api/v1/projects", headers=bearer(value)).status_code == 200
    first = key_row(db, key_id).last_used_at
    assert first is not None

    assert client.get("/api/v1/projects", headers=bearer(value)).status_code == 200
    assert key_row(db, key_id).last_used_at == first

    # A use more than a minute after the last recorded one is recorded again.
    set_key_times(db, key_id, last_used_at=utcnow() - timedelta(minutes=2))
    assert client.get("/api/v1/projects", headers=bearer(value)).status_code == 200
    latest = key_row(db, key_id).last_used_at
    assert latest is not None and latest > utcnow() - timedelta(minutes=1)


# ---------------------------------------------------------------- who manages keys


@pytest.fixture
def project_admin(client: TestClient, db: Database) -> TestClient:
    """Admin of project `default` only; project `other` exists too."""
    make_project(db, "other")
    _, value = make_key(db, Role.ADMIN, "default", name="project admin")
    client.headers.update(bearer(value))
    return client


def test_a_project_admin_lists_only_its_projects_keys(
    project_admin: TestClient, db: Database
) -> None:
    mine, _ = make_key(db, Role.VIEWER, "default")
    theirs, _ = make_key(db, Role.VIEWER, "other")
    instance, _ = make_key(db, Role.ADMIN)
    shown = listed_ids(project_admin, include_revoked=True)
    assert mine in shown
    assert theirs not in shown and instance not in shown


def test_a_project_admin_creates_keys_in_its_project(project_admin: TestClient) -> None:
    response = create(project_admin, role="sdk-server", project="default", environment="staging")
    assert response.status_code == 201, response.text


def test_a_project_admin_cannot_create_an_instance_wide_key(project_admin: TestClient) -> None:
    assert_problem(create(project_admin, role="admin"), 403, "forbidden")


def test_a_project_admin_cannot_create_keys_in_another_project(project_admin: TestClient) -> None:
    # The other project does not exist as far as this admin can tell.
    problem = assert_problem(
        create(project_admin, role="viewer", project="other"), 422, "validation-error"
    )
    assert problem["errors"][0]["pointer"] == "/project"


def test_another_projects_key_is_404_to_a_project_admin(
    project_admin: TestClient, db: Database
) -> None:
    theirs, value = make_key(db, Role.VIEWER, "other")
    instance, _ = make_key(db, Role.ADMIN)
    for key_id in (theirs, instance):
        assert_problem(project_admin.get(f"/api/v1/keys/{key_id}"), 404, "not-found")
        assert_problem(project_admin.post(f"/api/v1/keys/{key_id}/revoke"), 404, "not-found")
    assert project_admin.get("/api/v1/projects", headers=bearer(value)).status_code == 200


def test_only_admins_of_a_project_or_the_instance_manage_keys(
    client: TestClient, db: Database
) -> None:
    target, _ = make_key(db, Role.VIEWER, "default")
    new_key = {"name": "x", "role": "viewer", "project": "default"}
    for role, environment in [
        (Role.EDITOR, None),
        (Role.VIEWER, None),
        (Role.ADMIN, "staging"),
        (Role.SDK_SERVER, "production"),
        (Role.SDK_CLIENT, "production"),
    ]:
        _, value = make_key(db, role, "default", environment)
        headers = bearer(value)
        assert_problem(client.get("/api/v1/keys", headers=headers), 403, "forbidden")
        assert_problem(client.get(f"/api/v1/keys/{target}", headers=headers), 403, "forbidden")
        response = client.post("/api/v1/keys", json=new_key, headers=headers)
        assert_problem(response, 403, "forbidden")
        response = client.post(f"/api/v1/keys/{target}/revoke", headers=headers)
        assert_problem(response, 403, "forbidden")
    assert key_row(db, target).revoked_at is None


# ---------------------------------------------------------------- the secret stays secret


def test_only_the_digest_of_a_key_is_stored(admin: TestClient, db: Database) -> None:
    values = [
        create(admin, role="admin").json()["value"],
        create(admin, role="sdk-server", project="default", environment="production").json()[
            "value"
        ],
    ]
    rows = raw_rows(db, "api_keys")
    entries = raw_rows(db, "audit_entries")
    for value in values:
        assert len([row for row in rows if digest(value) in row]) == 1
        for row in rows + entries:
            assert not any(value in str(cell) for cell in row), row


def test_a_key_never_appears_in_the_logs(
    client: TestClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    _, value = make_key(db, Role.ADMIN)
    mistyped = value[:-1] + ("A" if value[-1] != "A" else "B")
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        created = client.post(
            "/api/v1/keys", json={"name": "new", "role": "admin"}, headers=bearer(value)
        )
        new_value = created.json()["value"]
        client.get("/api/v1/keys", headers=bearer(new_value))
        client.get(f"/api/v1/projects?api_key={value}", headers=bearer(value))
        client.get("/api/v1/projects", headers=bearer(mistyped))
        client.get("/api/v1/projects", headers={"Authorization": value})
    # httpx logs the URLs the test client asks for: that is the caller's log, not ours.
    ours = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    logged = repr(events) + repr([(r.getMessage(), r.__dict__) for r in ours])
    assert any(e.get("event") == "request" for e in events), "no request was logged at all"
    for secret in (value, mistyped, new_value):
        assert secret not in logged
