"""Alembic, driven from code: no alembic.ini needed where interlock is installed."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine | None = None) -> str | None:
    """The newest migration in this code; fixed for the life of the process."""
    return _head()


@lru_cache(maxsize=1)
def _head() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def schema_is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision(engine)


class SchemaOutdated(Exception):
    """The database schema is not the one this code expects."""


def require_current_schema(engine: Engine) -> None:
    current, head = current_revision(engine), head_revision(engine)
    if current != head:
        raise SchemaOutdated(
            f"database schema is at {current or 'nothing (empty database)'}, this interlock "
            f"needs {head}: run `interlock db upgrade` with the same INTERLOCK_DATABASE_URL"
        )
