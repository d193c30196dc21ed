"""An acknowledged write is committed: anyone opening the database afterwards sees it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from interlock.server.db.engine import Database
from interlock.server.projects import service as projects
from interlock.server.settings import Settings


def test_an_acknowledged_write_is_visible_from_a_brand_new_database_object(
    admin: TestClient, settings: Settings
) -> None:
    response = admin.post("/api/v1/projects", json={"key": "durable", "name": "Durable"})
    assert response.status_code == 201, response.text

    # A new engine and pool: what another process (the CLI, a second server) would open.
    other = Database(settings.effective_database_url)
    try:
        with other.read_session() as session:
            found = projects.find_project(session, "durable")
            assert found is not None
            assert [e.key for e in found.environments] == ["development", "staging", "production"]
    finally:
        other.dispose()


def test_an_acknowledged_update_is_visible_from_a_brand_new_database_object(
    admin: TestClient, settings: Settings
) -> None:
    etag = admin.get("/api/v1/projects/default").headers["ETag"]
    response = admin.patch(
        "/api/v1/projects/default", json={"name": "Renamed"}, headers={"If-Match": etag}
    )
    assert response.status_code == 200, response.text

    other = Database(settings.effective_database_url)
    try:
        with other.read_session() as session:
            found = projects.find_project(session, "default")
            assert found is not None
            assert (found.name, found.version) == ("Renamed", 2)
    finally:
        other.dispose()
