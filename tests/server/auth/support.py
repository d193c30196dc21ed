"""Helpers for the auth tests: keys and users made through the service, in-process."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update

from interlock.server.auth import service as auth
from interlock.server.auth.models import ApiKey
from interlock.server.auth.roles import Role
from interlock.server.db.engine import Database
from interlock.server.projects import service as projects
from tests.helpers import TEST_ACTOR

PASSWORD = "correct horse battery staple"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_key(
    db: Database,
    role: Role,
    project: str | None = None,
    environment: str | None = None,
    name: str = "test key",
    expires_at: datetime | None = None,
) -> tuple[int, str]:
    """A key made through the service: its id and value."""
    with db.write_session() as session:
        found_project = projects.get_project(session, project) if project else None
        found_environment = (
            projects.get_environment(session, found_project, environment)
            if found_project and environment
            else None
        )
        key, value = auth.create_key(
            session,
            TEST_ACTOR,
            name=name,
            role=role,
            project=found_project,
            environment=found_environment,
            expires_at=expires_at,
        )
        return key.id, value


def make_project(db: Database, key: str) -> None:
    with db.write_session() as session:
        projects.create_project(session, TEST_ACTOR, key=key, name=key.title())


def make_user(
    db: Database,
    email: str,
    role: Role = Role.VIEWER,
    project: str | None = None,
    environment: str | None = None,
    password: str = PASSWORD,
) -> int:
    with db.write_session() as session:
        found_project = projects.get_project(session, project) if project else None
        found_environment = (
            projects.get_environment(session, found_project, environment)
            if found_project and environment
            else None
        )
        user = auth.create_user(
            session,
            TEST_ACTOR,
            email=email,
            password=password,
            bindings=[auth.Binding(role, found_project, found_environment)],
            password_cost="minimum",
        )
        return user.id


def key_row(db: Database, key_id: int) -> ApiKey:
    with db.read_session() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.id == key_id))
        assert key is not None
        return key


def set_key_times(db: Database, key_id: int, **times: datetime | None) -> None:
    """Move a key's expiry, revocation or last use, instead of waiting for the clock."""
    with db.write_session() as session:
        session.execute(update(ApiKey).where(ApiKey.id == key_id).values(**times))


def raw_rows(db: Database, table: str) -> list[tuple[Any, ...]]:
    """Every row of a table as the database holds it, bypassing the ORM."""
    with db.read_session() as session:
        return [tuple(row) for row in session.execute(text(f"SELECT * FROM {table}"))]
