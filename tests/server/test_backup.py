"""`interlock db backup FILE` and `interlock db restore FILE` on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text
from typer.testing import CliRunner

from interlock.cli import app as cli_app
from interlock.server.audit.service import verify
from interlock.server.auth import service as auth
from interlock.server.auth.roles import Role
from interlock.server.db import backup
from interlock.server.db.engine import Database
from interlock.server.projects import service as projects
from interlock.server.settings import Settings
from tests.helpers import TEST_ACTOR

INTERLOCK = str(Path(sys.executable).with_name("interlock"))

Rows = dict[str, list[tuple[Any, ...]]]
# The online backup API is SQLite's; pg_dump's snapshot is PostgreSQL's own business.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def cli_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    assert settings.secret_key is not None
    env.update(
        INTERLOCK_DATA_DIR=str(settings.data_dir),
        INTERLOCK_DATABASE_URL=settings.effective_database_url,
        INTERLOCK_SECRET_KEY=settings.secret_key.get_secret_value(),
        INTERLOCK_PASSWORD_HASH_COST="minimum",
        INTERLOCK_LOAD_DEMO_DATA="false",
    )
    return env


def interlock(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command, in its own process, as an operator would run it."""
    return subprocess.run(
        [INTERLOCK, *args],
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def all_rows(engine: Engine) -> Rows:
    """Every row of every table (the migration table included), in primary-key order."""
    inspector = inspect(engine)
    rows: Rows = {}
    with engine.connect() as connection:
        for table in sorted(inspector.get_table_names()):
            key = inspector.get_pk_constraint(table)["constrained_columns"]
            order = ", ".join(f'"{column}"' for column in key)
            result = connection.execute(text(f'SELECT * FROM "{table}" ORDER BY {order}'))
            rows[table] = [tuple(row) for row in result]
    return rows


def create_project(db: Database, key: str, environments: list[str] | None = None) -> None:
    wanted = [(e, e.title()) for e in environments] if environments is not None else None
    with db.write_session() as session:
        projects.create_project(session, TEST_ACTOR, key=key, name=key.title(), environments=wanted)


def rename_project(db: Database, key: str, name: str) -> None:
    with db.write_session() as session:
        project = projects.get_project(session, key)
        projects.update_project(session, TEST_ACTOR, project, if_match="*", name=name)


def audit_is_intact(db: Database) -> bool:
    with db.read_session() as session:
        return verify(session).ok


def test_a_restore_brings_back_exactly_the_backed_up_state(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    create_project(db, "alpha")
    create_project(db, "beta", ["qa"])
    rename_project(db, "alpha", "Alpha one")
    with db.write_session() as session:
        auth.create_key(session, TEST_ACTOR, name="before", role=Role.ADMIN)
    backed_up = all_rows(db.engine)

    file = tmp_path / "backup.file"
    done = interlock(settings, "db", "backup", str(file))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""

    create_project(db, "gamma")
    rename_project(db, "alpha", "Alpha two")
    with db.write_session() as session:
        projects.delete_project(session, TEST_ACTOR, projects.get_project(session, "beta"))
        auth.create_key(session, TEST_ACTOR, name="after", role=Role.ADMIN)
    assert all_rows(db.engine) != backed_up

    db.dispose()  # the server is stopped for a restore
    done = interlock(settings, "db", "restore", str(file))
    assert done.returncode == 0, done.stderr

    assert all_rows(db.engine) == backed_up
    verified = interlock(settings, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # Sequences and the chain's head came back too: the next write fits after the backup.
    create_project(db, "delta")
    assert audit_is_intact(db)


def refused(settings: Settings, *args: str) -> str:
    """Run the command in-process; it must fail with one line on stderr. Returns the line."""
    result = CliRunner().invoke(cli_app, list(args), env=cli_env(settings))
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("interlock: "), result.stderr
    return lines[0]


def other_kind_of_backup(settings: Settings, tmp_path: Path) -> Path:
    """A file that starts like a backup of the other database."""
    file = tmp_path / "other-kind"
    file.write_bytes(
        (backup.PG_DUMP_MAGIC if settings.embedded else backup.SQLITE_MAGIC) + b"\0" * 64
    )
    return file


def plain_sqlite_file(_settings: Settings, tmp_path: Path) -> Path:
    file = tmp_path / "plain.db"
    with sqlite3.connect(file) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    return file


def text_file(_settings: Settings, tmp_path: Path) -> Path:
    file = tmp_path / "notes.txt"
    file.write_text("not a backup\n")
    return file


@pytest.mark.parametrize(
    ("make_file", "message"),
    [
        (lambda _s, p: p / "missing.backup", "no such file"),
        (lambda _s, p: p, "not a file"),
        (text_file, "is not an interlock backup"),
        (other_kind_of_backup, "backup; this interlock uses"),
    ],
    ids=["missing", "directory", "text", "other-database"],
)
def test_a_restore_from_a_file_that_is_not_a_backup_is_refused_and_changes_nothing(
    db: Database, settings: Settings, tmp_path: Path, make_file: Any, message: str
) -> None:
    create_project(db, "kept")
    before = all_rows(db.engine)
    line = refused(settings, "db", "restore", str(make_file(settings, tmp_path)))
    assert message in line
    assert all_rows(db.engine) == before


@SQLITE_ONLY
def test_a_sqlite_database_of_another_program_is_not_restored(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    before = all_rows(db.engine)
    line = refused(settings, "db", "restore", str(plain_sqlite_file(settings, tmp_path)))
    assert "not an interlock database" in line
    assert all_rows(db.engine) == before


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        (lambda p: p / "no" / "such" / "dir" / "backup", "no directory"),
        (lambda p: p, "it is a directory"),
    ],
    ids=["missing-directory", "directory"],
)
def test_a_backup_to_a_place_that_cannot_take_it_fails_and_leaves_nothing(
    db: Database, settings: Settings, tmp_path: Path, destination: Any, message: str
) -> None:
    before = sorted(tmp_path.rglob("*"))
    line = refused(settings, "db", "backup", str(destination(tmp_path)))
    assert message in line
    assert sorted(tmp_path.rglob("*")) == before


def test_a_backup_of_an_unreachable_database_says_so(settings: Settings, tmp_path: Path) -> None:
    if settings.embedded:
        gone = settings.model_copy(
            update={"database_url": f"sqlite:///{tmp_path / 'nowhere' / 'interlock.db'}"}
        )
        expected = "no database at"
    else:
        gone = settings.model_copy(
            update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/test"}
        )
        expected = "cannot reach the database"
    line = refused(gone, "db", "backup", str(tmp_path / "backup.file"))
    assert expected in line
    assert not (tmp_path / "backup.file").exists()


def test_a_backup_from_a_newer_interlock_is_refused_and_changes_nothing(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
    file = tmp_path / "newer.backup"
    backup.backup(settings.effective_database_url, file)
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": current()})
    create_project(db, "kept")
    before = all_rows(db.engine)

    with pytest.raises(backup.BackupError, match="made by a newer interlock"):
        backup.restore(settings.effective_database_url, file)
    assert all_rows(db.engine) == before


def current() -> str:
    from interlock.server.db.migrate import head_revision

    head = head_revision()
    assert head is not None
    return head


# SQLite's backup API replaces the whole file, tables and all; pg_restore needs telling.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_postgres_restore_drops_what_was_added_after_the_backup(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    file = tmp_path / "backup.file"
    backup.backup(settings.effective_database_url, file)
    before = all_rows(db.engine)
    with db.engine.begin() as connection:
        for statement in ADDED_LATER:
            connection.execute(text(statement))
    db.dispose()
    backup.restore(settings.effective_database_url, file)
    assert all_rows(db.engine) == before
    with db.engine.connect() as connection:
        left = connection.execute(
            text(
                "SELECT relname FROM pg_class WHERE relname LIKE 'added%' "
                "AND relnamespace = current_schema()::regnamespace "
                "UNION ALL SELECT typname FROM pg_type WHERE typname LIKE 'added%' "
                "AND typnamespace = current_schema()::regnamespace "
                "UNION ALL SELECT proname FROM pg_proc WHERE proname LIKE 'added%' "
                "AND pronamespace = current_schema()::regnamespace"
            )
        ).all()
    assert left == []


ADDED_LATER = (
    "CREATE TYPE added_mood AS ENUM ('calm')",
    "CREATE TYPE added_pair AS (a integer, b integer)",
    "CREATE TABLE added_later (id integer PRIMARY KEY, mood added_mood)",
    "CREATE VIEW added_view AS SELECT id FROM added_later",
    "CREATE SEQUENCE added_sequence",
    "CREATE FUNCTION added_function() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
)


# --- SQLite: a backup taken while another connection writes ---------------------------------


@SQLITE_ONLY
def test_a_sqlite_backup_leaves_out_a_write_that_has_not_committed(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    file = tmp_path / "backup.file"
    # A writer holds the write lock with its change made but not committed; in WAL mode the
    # backup neither waits for it nor sees its change.
    with db.write_session() as session:
        projects.create_project(session, TEST_ACTOR, key="pending", name="Pending")
        session.flush()
        backup.backup(settings.effective_database_url, file)
    copy = Database(f"sqlite:///{file}")
    try:
        with copy.read_session() as session:
            assert projects.find_project(session, "pending") is None
            assert verify(session).ok
    finally:
        copy.dispose()
    with db.read_session() as session:
        assert projects.find_project(session, "pending") is not None


@pytest.fixture
def busy_writer(db: Database, settings: Settings) -> Iterator[threading.Event]:
    """A second connection creating projects in a loop until the test ends."""
    writer = Database(settings.effective_database_url)
    stop, started = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        number = 0
        try:
            while not stop.is_set():
                create_project(writer, f"busy-{number}", ["one", "two"])
                number += 1
                if number == 5:
                    started.set()
        except BaseException as exc:  # reported by the fixture, not lost in the thread
            failures.append(exc)
            started.set()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    assert started.wait(30)
    yield stop
    stop.set()
    thread.join(30)
    writer.dispose()
    assert not failures, failures


@SQLITE_ONLY
def test_sqlite_backups_taken_while_another_connection_writes_are_consistent(
    db: Database, settings: Settings, tmp_path: Path, busy_writer: threading.Event
) -> None:
    counts = []
    for number in range(3):
        file = tmp_path / f"backup-{number}.file"
        backup.backup(settings.effective_database_url, file)
        with sqlite3.connect(file) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert raw.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        copy = Database(f"sqlite:///{file}")
        try:
            with copy.read_session() as session:
                assert verify(session).ok
                keys = {
                    p.key
                    for p in projects.list_projects(
                        session, visible_ids=None, limit=1000, cursor=None
                    )[0]
                }
                created = set(
                    session.scalars(
                        text(
                            "SELECT resource_id FROM audit_entries WHERE action = 'project.create'"
                        )
                    )
                )
                # Each project together with its environments and its audit entry, or none.
                assert keys == created
                for key in keys - {"default"}:
                    environments = projects.get_project(session, key).environments
                    assert [e.key for e in environments] == ["one", "two"]
                counts.append(len(keys))
        finally:
            copy.dispose()
    assert counts == sorted(counts)


@pytest.mark.parametrize("command", [backup.backup, backup.restore])
def test_without_the_postgresql_client_tools_the_message_says_what_to_install(
    command: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "backup.file"
    archive.write_bytes(backup.PG_DUMP_MAGIC + b"\0" * 64)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(backup.BackupError, match="apt-get install postgresql-client"):
        command("postgresql+psycopg://postgres@127.0.0.1:1/test", archive)
