"""First start: a fresh instance sets itself up once, and only once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text

from interlock.server.audit.models import AuditEntry
from interlock.server.auth import service as auth
from interlock.server.auth.models import User
from interlock.server.bootstrap import (
    ADMIN_EMAIL,
    DEFAULT_PROJECT,
    DEMO_PROJECTS,
    ensure_initial_data,
    prepare,
)
from interlock.server.db import migrate
from interlock.server.db.engine import Database
from interlock.server.db.migrate import SchemaOutdated
from interlock.server.projects import service as projects
from interlock.server.projects.models import Project
from interlock.server.settings import Settings
from tests.conftest import make_settings
from tests.server.db.schemas import empty_postgres_schema

DEMO_KEYS = [key for key, _, _ in DEMO_PROJECTS]


@pytest.fixture
def fresh(database_url: str) -> Iterator[Database]:
    """A migrated database with nothing in it yet."""
    db = Database(database_url)
    yield db
    db.dispose()


def project_keys(db: Database) -> list[str]:
    with db.read_session() as session:
        return list(session.scalars(select(Project.key).order_by(Project.id)))


def count(db: Database, model: type[User] | type[AuditEntry]) -> int:
    with db.read_session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_first_start_creates_the_default_project_an_admin_and_the_demo_data_once(
    fresh: Database, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path, load_demo_data=True)

    first = ensure_initial_data(settings, fresh)
    assert first.admin_email == ADMIN_EMAIL
    assert first.admin_password
    assert first.demo_loaded
    audited = count(fresh, AuditEntry)

    second = ensure_initial_data(settings, fresh)
    assert (second.admin_email, second.admin_password, second.demo_loaded) == (None, None, False)

    assert project_keys(fresh) == [DEFAULT_PROJECT, *DEMO_KEYS]
    assert count(fresh, User) == 1
    assert count(fresh, AuditEntry) == audited  # the second run wrote nothing
    with fresh.read_session() as session:
        admin = auth.authenticate_password(
            session, ADMIN_EMAIL, first.admin_password, settings.password_hash_cost
        )
        assert admin is not None
        default = projects.get_project(session, DEFAULT_PROJECT)
        assert [e.key for e in default.environments] == ["development", "staging", "production"]


def test_demo_projects_a_user_deleted_are_not_loaded_again(
    fresh: Database, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path, load_demo_data=True)
    ensure_initial_data(settings, fresh)
    with fresh.write_session() as session:
        for key in DEMO_KEYS:
            session.delete(projects.get_project(session, key))

    assert not ensure_initial_data(settings, fresh).demo_loaded
    assert project_keys(fresh) == [DEFAULT_PROJECT]


def test_a_deleted_default_project_comes_back_at_the_next_start(
    fresh: Database, settings: Settings
) -> None:
    ensure_initial_data(settings, fresh)
    with fresh.write_session() as session:
        session.delete(projects.get_project(session, DEFAULT_PROJECT))
    assert project_keys(fresh) == []

    again = ensure_initial_data(settings, fresh)
    assert again.admin_password is None
    assert project_keys(fresh) == [DEFAULT_PROJECT]


def test_without_demo_data_only_the_default_project_is_created(
    fresh: Database, settings: Settings
) -> None:
    assert not settings.load_demo_data
    assert not ensure_initial_data(settings, fresh).demo_loaded
    assert project_keys(fresh) == [DEFAULT_PROJECT]


def test_embedded_prepare_migrates_a_fresh_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "not-yet-created"
    settings = make_settings("", data_dir)
    assert settings.embedded
    db = Database(settings.effective_database_url)
    try:
        first = prepare(settings, db)
        assert (data_dir / "interlock.db").is_file()
        assert migrate.schema_is_current(db.engine)
        assert first.admin_password
        assert project_keys(db) == [DEFAULT_PROJECT]

        again = prepare(settings, db)
        assert again.admin_password is None
        assert project_keys(db) == [DEFAULT_PROJECT]
    finally:
        db.dispose()


def test_postgres_prepare_refuses_an_empty_schema_and_says_how_to_fix_it(
    tmp_path: Path,
) -> None:
    with empty_postgres_schema() as url:
        settings = make_settings(url, tmp_path)
        assert not settings.embedded
        db = Database(url)
        try:
            with pytest.raises(SchemaOutdated, match="run `interlock db upgrade`"):
                prepare(settings, db)
            # It refused without touching anything: no tables, not even Alembic's.
            assert inspect(db.engine).get_table_names() == []

            migrate.upgrade(db.engine)
            assert prepare(settings, db).admin_password
            assert project_keys(db) == [DEFAULT_PROJECT]
        finally:
            db.dispose()


def test_postgres_prepare_refuses_a_schema_from_a_newer_interlock(tmp_path: Path) -> None:
    with empty_postgres_schema() as url:
        db = Database(url)
        try:
            migrate.upgrade(db.engine)
            with db.engine.begin() as connection:
                connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
            with pytest.raises(SchemaOutdated, match="newer interlock"):
                prepare(make_settings(url, tmp_path), db)
            assert project_keys(db) == []
        finally:
            db.dispose()


def cli_environment(data_dir: Path) -> dict[str, str]:
    """This environment without INTERLOCK_* settings, pointed at `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    env.update(INTERLOCK_DATA_DIR=str(data_dir), INTERLOCK_PASSWORD_HASH_COST="minimum")
    return env


def test_two_cli_commands_started_at_once_on_an_empty_data_dir_both_set_it_up(
    tmp_path: Path,
) -> None:
    # Two first starts racing: one migrates and seeds, the other waits its turn and finds
    # it done (before migrations took the write lock, one failed with "database is locked").
    data_dir = tmp_path / "data"
    command = [str(Path(sys.executable).with_name("interlock")), "keys", "list"]
    runs = [
        subprocess.Popen(
            command,
            cwd=tmp_path,  # no stray .env
            env=cli_environment(data_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=60) for run in runs]

    for run, (_, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr
    assert [stdout for stdout, _ in outputs] == ["", ""]  # no keys yet
    assert sum("created the first admin" in stderr for _, stderr in outputs) == 1

    with closing(sqlite3.connect(data_dir / "interlock.db")) as connection:
        keys = [k for (k,) in connection.execute("SELECT key FROM projects ORDER BY id")]
        (users,) = connection.execute("SELECT count(*) FROM users").fetchone()
    # Demo data waits for the first `serve`: a CLI command sets up only what it needs.
    assert keys == [DEFAULT_PROJECT]
    assert users == 1
