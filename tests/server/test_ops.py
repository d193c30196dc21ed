"""Operations endpoints: health, readiness, metrics, version, the API description."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

import interlock
from interlock.server.db import migrate
from interlock.server.db.engine import Database
from interlock.server.ops.metrics import UNMATCHED

OPERATIONS_PATHS = ["/healthz", "/readyz", "/metrics", "/api/v1/version", "/openapi.json", "/docs"]


def test_operations_endpoints_need_no_key(client: TestClient) -> None:
    for path in OPERATIONS_PATHS:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)


def test_healthz_says_the_process_is_alive(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_is_ready_when_the_database_answers_with_the_current_schema(
    client: TestClient,
) -> None:
    body = client.get("/readyz").json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["schema_revision"] == body["expected_revision"] is not None


@pytest.fixture
def schema_behind(db: Database) -> Iterator[str]:
    """The running app's database now says its schema is one migration behind the code; put
    back afterwards (the table is not among those the fixtures reset between tests)."""
    head = migrate.head_revision()
    assert head is not None
    script = ScriptDirectory.from_config(migrate.alembic_config(db.engine)).get_revision(head)
    assert script is not None
    older = script.down_revision if isinstance(script.down_revision, str) else None
    with db.write_session() as session:
        session.execute(text("DELETE FROM alembic_version"))
        if older is not None:
            session.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": older})
    try:
        yield older or "nothing"
    finally:
        with db.write_session() as session:
            session.execute(text("DELETE FROM alembic_version"))
            session.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": head})


def test_readyz_is_503_when_the_schema_is_behind(client: TestClient, schema_behind: str) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert (body["schema_revision"] or "nothing") == schema_behind
    assert body["expected_revision"] == migrate.head_revision()


def test_readyz_is_503_when_the_database_is_unreachable(app: FastAPI, client: TestClient) -> None:
    # Nothing listens on port 1: every connection is refused at once.
    unreachable = Database("postgresql+psycopg://postgres@127.0.0.1:1/test")
    app.state.db = unreachable
    try:
        response = client.get("/readyz")
    finally:
        unreachable.dispose()
    assert response.status_code == 503
    assert response.json()["database"].startswith("unreachable")
    assert client.get("/healthz").status_code == 200


def _samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_requests_by_route_template_and_status(
    admin: TestClient,
) -> None:
    template = "/api/v1/projects/{project}"
    before = _samples(admin)
    assert admin.get("/api/v1/projects/default").status_code == 200
    assert admin.get("/api/v1/projects/absent").status_code == 404
    after = _samples(admin)
    total = "interlock_http_requests_total"
    for status in ("200", "404"):
        labels = {"method": "GET", "route": template, "status": status}
        assert _value(after, total, **labels) - _value(before, total, **labels) == 1
    latency = "interlock_http_request_duration_seconds_count"
    for status in ("200", "404"):
        labels = {"method": "GET", "route": template, "status": status}
        assert _value(after, latency, **labels) - _value(before, latency, **labels) == 1
    routes = {dict(labels).get("route") for _, labels in after}
    assert "/api/v1/projects/default" not in routes


def test_paths_that_match_no_route_are_counted_under_one_label(client: TestClient) -> None:
    before = _samples(client)
    for path in ("/wp-admin/install.php", "/.env", "/api/v1/nothing/here"):
        assert client.get(path).status_code == 404
    after = _samples(client)
    labels = {"method": "GET", "route": UNMATCHED, "status": "404"}
    name = "interlock_http_requests_total"
    assert _value(after, name, **labels) - _value(before, name, **labels) == 3
    routes = {dict(labels).get("route") for _, labels in after}
    assert not {"/wp-admin/install.php", "/.env"} & routes


def test_unusual_methods_share_one_label(client: TestClient) -> None:
    client.request("BREW", "/healthz")
    methods = {dict(labels).get("method") for _, labels in _samples(client)}
    assert "OTHER" in methods
    assert "BREW" not in methods


def test_pages_are_counted_under_their_own_route(client: TestClient) -> None:
    client.get("/docs")
    routes = {dict(labels).get("route") for _, labels in _samples(client)}
    assert "/docs" in routes


def test_metrics_carry_the_build_info(client: TestClient) -> None:
    samples = _samples(client)
    [(_, labels)] = [key for key in samples if key[0] == "interlock_build_info"]
    assert dict(labels)["version"] == interlock.__version__


def test_version_names_the_release_and_the_database(client: TestClient, db: Database) -> None:
    body = client.get("/api/v1/version").json()
    assert body["version"] == interlock.__version__
    assert body["database"] == db.engine.dialect.name


def test_the_api_is_described_in_openapi_3_1_with_docs(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.1")
    assert "/api/v1/projects" in schema["paths"]
    docs = client.get("/docs")
    assert docs.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in docs.text
