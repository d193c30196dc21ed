"""Fixtures shared by the whole suite.

`database_url` is parametrized over SQLite and PostgreSQL: every test that touches the
database (directly or through `db`, `app`, `client`) runs on both. Tests that do not use it
run once. The PostgreSQL leg uses 127.0.0.1:5432, database `test`, one schema per xdist
worker; it is skipped, saying why, only when that server does not answer.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from interlock.server.app import create_app
from interlock.server.auth import service as auth
from interlock.server.auth.roles import Role
from interlock.server.bootstrap import ensure_initial_data
from interlock.server.db import migrate
from interlock.server.db.engine import Database
from interlock.server.db.models import Base
from interlock.server.settings import Settings
from tests.helpers import TEST_ACTOR

PG_ADMIN_URL = os.environ.get(
    "INTERLOCK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test: migrating once is the slow part."""
    path = tmp_path_factory.mktemp("template") / "interlock.db"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db.engine)
    db.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_schema_url() -> Iterator[str]:
    """A fresh, migrated schema for this worker in database `test`."""
    # The pid keeps concurrent test runs on one machine out of each other's schemas.
    schema = f"interlock_test_{_worker()}_{os.getpid()}"
    try:
        admin = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        pytest.skip(f"PostgreSQL leg skipped: {PG_ADMIN_URL} is not reachable ({exc})")
    url = f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    db = Database(url)
    migrate.upgrade(db.engine)
    db.dispose()
    yield url
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        target = tmp_path / "interlock.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("postgres_schema_url")
    truncate_all(url)
    return url


def truncate_all(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "secret_key": "test-secret-key-not-for-production",
        "password_hash_cost": "minimum",
        "load_demo_data": False,
        # No job runner unless a test asks for one (tests/server/jobs does): its heartbeat
        # writes to the database while other tests compare database contents.
        "jobs_runner": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.effective_database_url)
    ensure_initial_data(settings, database)
    yield database
    database.dispose()


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, db)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def admin_key(db: Database) -> str:
    """An instance-wide admin key."""
    with db.write_session() as session:
        _, value = auth.create_key(session, TEST_ACTOR, name="test admin", role=Role.ADMIN)
    return value


@pytest.fixture
def admin(client: TestClient, admin_key: str) -> TestClient:
    """The test client, sending the admin key on every request."""
    client.headers["Authorization"] = f"Bearer {admin_key}"
    return client
