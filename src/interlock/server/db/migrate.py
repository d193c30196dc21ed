"""Alembic, driven from code: no alembic.ini needed where interlock is installed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from interlock.server.db.engine import WRITE_LOCK_KEY, WRITE_OPTION

MIGRATIONS = Path(__file__).parent / "migrations"
UPGRADE_COMMAND = "interlock db upgrade"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine | None = None) -> str | None:
    """The newest migration in this code; fixed for the life of the process."""
    return _head()


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


@lru_cache(maxsize=1)
def _head() -> str | None:
    return _script().get_current_head()


def known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _script().walk_revisions())


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to `revision`; concurrent callers (two first starts) run one after the other."""
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection whose one transaction holds the write lock for a whole migration run.

    The lock makes a second process that starts at the same moment wait, then find the schema
    current, instead of failing with "database is locked" or "table already exists".
    On SQLite, foreign keys are off meanwhile: a batch migration rebuilds a table by copying
    it and dropping the original, and with foreign keys on, that DROP would run every child's
    ON DELETE CASCADE and empty them. `PRAGMA foreign_key_check` then refuses to commit a
    migration that left a dangling reference. (The pragma is a no-op inside a transaction,
    hence the raw driver connection, outside SQLAlchemy's autobegin.)
    """
    with engine.connect() as connection:
        sqlite = engine.dialect.name == "sqlite"
        driver = connection.connection.dbapi_connection
        assert driver is not None
        if sqlite:
            driver.execute("PRAGMA foreign_keys=OFF")
        try:
            connection.execution_options(**{WRITE_OPTION: True})
            with connection.begin():
                if not sqlite:
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK_KEY}
                    )
                yield connection
                if sqlite:
                    dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if dangling:
                        raise RuntimeError(f"migration left dangling foreign keys: {dangling}")
        finally:
            if sqlite:
                driver.execute("PRAGMA foreign_keys=ON")


class SchemaOutdated(Exception):
    """The database schema is not the one this code expects."""


def require_current_schema(engine: Engine) -> None:
    """Raise SchemaOutdated, with one line saying what to do, unless the schema is current."""
    current, head = current_revision(engine), head_revision(engine)
    if current == head:
        return
    if current is not None and current not in known_revisions():
        raise SchemaOutdated(
            f"database schema is at {current}, which this interlock (schema {head}) does not "
            "know: the database was migrated by a newer interlock; run that version"
        )
    raise SchemaOutdated(
        f"database schema is at {current or 'nothing (empty database)'}, this interlock "
        f"needs {head}: run `{UPGRADE_COMMAND}` with the same INTERLOCK_DATABASE_URL"
    )


def schema_is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision(engine)
