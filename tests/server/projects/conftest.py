from __future__ import annotations

from collections.abc import Callable

import pytest

from interlock.server.auth import service as auth
from interlock.server.auth.roles import Role
from interlock.server.db.engine import Database
from interlock.server.projects import service as projects
from tests.helpers import TEST_ACTOR

MakeKey = Callable[[Role, str], str]


@pytest.fixture
def project_key(db: Database) -> MakeKey:
    """make(role, project): the value of a new key of `role` scoped to `project`."""

    def make(role: Role, project: str) -> str:
        with db.write_session() as session:
            found = projects.get_project(session, project)
            environment = (
                found.environments[0] if role in (Role.SDK_SERVER, Role.SDK_CLIENT) else None
            )
            _, value = auth.create_key(
                session,
                TEST_ACTOR,
                name="scoped",
                role=role,
                project=found,
                environment=environment,
            )
        return value

    return make
