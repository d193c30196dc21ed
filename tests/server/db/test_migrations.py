"""The migrations build exactly the schema the models describe, and can be undone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, func, inspect, select

from interlock.server.bootstrap import ensure_initial_data
from interlock.server.db import migrate
from interlock.server.db.base import NAMING
from interlock.server.db.engine import Database
from interlock.server.db.models import Base
from interlock.server.projects.models import Environment
from tests.conftest import make_settings


@pytest.fixture
def migrated(empty_database_url: str) -> Iterator[Database]:
    db = Database(empty_database_url)
    migrate.upgrade(db.engine)
    yield db
    db.dispose()


def differences(engine: Engine, metadata: MetaData) -> list[tuple[Any, ...]]:
    """What autogenerate would write to turn the database into `metadata`, flattened."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        found = compare_metadata(context, metadata)
    flat: list[tuple[Any, ...]] = []
    for item in found:
        flat.extend(item if isinstance(item, list) else [item])
    return flat


def test_models_and_migrations_agree(migrated: Database) -> None:
    assert differences(migrated.engine, Base.metadata) == []


def _nullable_name(metadata: MetaData) -> None:
    metadata.tables["projects"].c.name.nullable = True


def _shorter_key(metadata: MetaData) -> None:
    metadata.tables["projects"].c.key.type = sa.String(32)


def _extra_index(metadata: MetaData) -> None:
    table = metadata.tables["environments"]
    sa.Index("ix_environments_name", table.c.name)


def _no_unique_digest(metadata: MetaData) -> None:
    table = metadata.tables["api_keys"]
    table.constraints = {c for c in table.constraints if not isinstance(c, sa.UniqueConstraint)}


def _no_foreign_key(metadata: MetaData) -> None:
    table = metadata.tables["environments"]
    table.constraints = {c for c in table.constraints if not isinstance(c, sa.ForeignKeyConstraint)}
    table.c.project_id.foreign_keys.clear()


@pytest.mark.parametrize(
    ("drift", "kind"),
    [
        (_nullable_name, "modify_nullable"),
        (_shorter_key, "modify_type"),
        (_extra_index, "add_index"),
        (_no_unique_digest, "remove_constraint"),
        (_no_foreign_key, "remove_fk"),
    ],
)
def test_the_comparison_notices_a_model_that_drifted_from_the_migrations(
    migrated: Database, drift: Callable[[MetaData], None], kind: str
) -> None:
    # Without this, an empty difference list could mean the comparison looks at nothing.
    drifted = MetaData(naming_convention=NAMING)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(drifted)
    drift(drifted)
    assert kind in {d[0] for d in differences(migrated.engine, drifted)}


def test_downgrading_to_nothing_and_upgrading_again_gives_the_same_schema(
    migrated: Database,
) -> None:
    migrate.downgrade(migrated.engine, "base")
    assert migrate.current_revision(migrated.engine) is None
    assert set(inspect(migrated.engine).get_table_names()) <= {"alembic_version"}

    migrate.upgrade(migrated.engine)
    assert migrate.current_revision(migrated.engine) == migrate.head_revision()
    assert differences(migrated.engine, Base.metadata) == []


def test_every_model_table_is_created_by_the_migrations(migrated: Database) -> None:
    tables = set(inspect(migrated.engine).get_table_names()) - {"alembic_version"}
    assert tables == set(Base.metadata.tables)


def _count_environments(db: Database) -> int:
    with db.read_session() as session:
        return session.scalar(select(func.count()).select_from(Environment)) or 0


def _rebuild_projects_table(connection: sa.Connection) -> None:
    """What a batch migration of `projects` does on SQLite: copy, drop, rename."""
    context = MigrationContext.configure(connection, opts={"render_as_batch": True})
    with Operations(context).batch_alter_table("projects", recreate="always") as batch:
        batch.add_column(sa.Column("extra", sa.String(10), nullable=True))


def _seeded_sqlite(tmp_path: Path) -> Database:
    url = f"sqlite:///{tmp_path / 'interlock.db'}"
    db = Database(url)
    migrate.upgrade(db.engine)
    ensure_initial_data(make_settings(url, tmp_path), db)
    return db


def test_a_sqlite_batch_migration_of_a_parent_table_keeps_its_children(tmp_path: Path) -> None:
    db = _seeded_sqlite(tmp_path)
    assert _count_environments(db) == 3

    with migrate.migration_connection(db.engine) as connection:
        _rebuild_projects_table(connection)

    assert _count_environments(db) == 3
    assert "extra" in {c["name"] for c in inspect(db.engine).get_columns("projects")}
    with db.engine.connect() as connection:
        # The pooled connection the migration used has its foreign keys back on.
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.dispose()


def test_with_foreign_keys_on_the_same_rebuild_would_empty_the_children(tmp_path: Path) -> None:
    # Why migration_connection turns foreign keys off: DROP TABLE runs ON DELETE CASCADE.
    db = _seeded_sqlite(tmp_path)
    with db.engine.begin() as connection:
        _rebuild_projects_table(connection)
    assert _count_environments(db) == 0
    db.dispose()


def test_a_sqlite_migration_that_leaves_a_dangling_reference_is_not_committed(
    tmp_path: Path,
) -> None:
    db = _seeded_sqlite(tmp_path)
    with (
        pytest.raises(RuntimeError, match="dangling foreign keys"),
        migrate.migration_connection(db.engine) as connection,
    ):
        connection.exec_driver_sql("DELETE FROM projects")
    assert _count_environments(db) == 3
    db.dispose()
