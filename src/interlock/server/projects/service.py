"""Operations on projects and environments. Each write audits itself in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from interlock.server.audit import service as audit
from interlock.server.audit.service import Actor
from interlock.server.concurrency import check_if_match
from interlock.server.pagination import paginate
from interlock.server.problems import conflict, not_found
from interlock.server.projects.models import Environment, Project

DEFAULT_ENVIRONMENTS = (
    ("development", "Development"),
    ("staging", "Staging"),
    ("production", "Production"),
)
MAX_ENVIRONMENTS = 50


def project_snapshot(project: Project) -> dict[str, Any]:
    return {
        "key": project.key,
        "name": project.name,
        "description": project.description,
        "version": project.version,
        "environments": [e.key for e in project.environments],
    }


def environment_snapshot(environment: Environment) -> dict[str, Any]:
    return {
        "key": environment.key,
        "name": environment.name,
        "position": environment.position,
        "version": environment.version,
    }


def get_project(session: Session, key: str) -> Project:
    project = session.scalar(select(Project).where(Project.key == key))
    if project is None:
        raise not_found(f"project {key!r}")
    return project


def find_project(session: Session, key: str) -> Project | None:
    return session.scalar(select(Project).where(Project.key == key))


def list_projects(
    session: Session, *, visible_ids: set[int] | None, limit: int, cursor: str | None
) -> tuple[Sequence[Project], str | None]:
    """Projects in creation order; `visible_ids` None means all of them."""
    statement = select(Project)
    if visible_ids is not None:
        statement = statement.where(Project.id.in_(visible_ids))
    return paginate(session, statement, Project.id, limit=limit, cursor=cursor)


def create_project(
    session: Session,
    actor: Actor,
    *,
    key: str,
    name: str,
    description: str = "",
    environments: Sequence[tuple[str, str]] | None = None,
) -> Project:
    if find_project(session, key) is not None:
        raise conflict(f"a project with key {key!r} already exists")
    wanted = list(environments) if environments is not None else list(DEFAULT_ENVIRONMENTS)
    env_keys = [env_key for env_key, _ in wanted]
    if len(set(env_keys)) != len(env_keys):
        raise conflict("environment keys must be unique within a project")
    project = Project(key=key, name=name, description=description)
    project.environments = [
        Environment(key=env_key, name=env_name, position=index)
        for index, (env_key, env_name) in enumerate(wanted)
    ]
    session.add(project)
    session.flush()
    audit.record(
        session,
        actor,
        "project.create",
        "project",
        key,
        project_key=key,
        after=project_snapshot(project),
    )
    return project


def update_project(
    session: Session,
    actor: Actor,
    project: Project,
    *,
    if_match: str | None,
    name: str | None = None,
    description: str | None = None,
) -> Project:
    check_if_match(if_match, project.version, "project")
    before = project_snapshot(project)
    if name is not None:
        project.name = name
    if description is not None:
        project.description = description
    project.version += 1
    session.flush()
    audit.record(
        session,
        actor,
        "project.update",
        "project",
        project.key,
        project_key=project.key,
        before=before,
        after=project_snapshot(project),
    )
    return project


def delete_project(session: Session, actor: Actor, project: Project) -> None:
    before = project_snapshot(project)
    session.delete(project)
    session.flush()
    audit.record(
        session,
        actor,
        "project.delete",
        "project",
        before["key"],
        project_key=before["key"],
        before=before,
    )


def get_environment(session: Session, project: Project, key: str) -> Environment:
    environment = session.scalar(
        select(Environment).where(Environment.project_id == project.id, Environment.key == key)
    )
    if environment is None:
        raise not_found(f"environment {key!r} of project {project.key!r}")
    return environment


def _place(project: Project, environment: Environment, position: int | None) -> None:
    """Move `environment` to `position` (clamped) and renumber the others densely."""
    others = [e for e in project.environments if e is not environment]
    index = len(others) if position is None else min(position, len(others))
    others.insert(index, environment)
    for number, env in enumerate(others):
        if env.position != number:
            env.position = number
            if env is not environment:
                env.version += 1


def create_environment(
    session: Session,
    actor: Actor,
    project: Project,
    *,
    key: str,
    name: str,
    position: int | None = None,
) -> Environment:
    existing = {e.key for e in project.environments}
    if key in existing:
        raise conflict(f"project {project.key!r} already has an environment {key!r}")
    if len(existing) >= MAX_ENVIRONMENTS:
        raise conflict(f"a project has at most {MAX_ENVIRONMENTS} environments")
    environment = Environment(key=key, name=name, position=len(existing))
    project.environments.append(environment)
    _place(project, environment, position)
    session.flush()
    audit.record(
        session,
        actor,
        "environment.create",
        "environment",
        f"{project.key}/{key}",
        project_key=project.key,
        after=environment_snapshot(environment),
    )
    return environment


def update_environment(
    session: Session,
    actor: Actor,
    project: Project,
    environment: Environment,
    *,
    if_match: str | None,
    name: str | None = None,
    position: int | None = None,
) -> Environment:
    check_if_match(if_match, environment.version, "environment")
    before = environment_snapshot(environment)
    if name is not None:
        environment.name = name
    if position is not None:
        _place(project, environment, position)
    environment.version += 1
    session.flush()
    audit.record(
        session,
        actor,
        "environment.update",
        "environment",
        f"{project.key}/{environment.key}",
        project_key=project.key,
        before=before,
        after=environment_snapshot(environment),
    )
    return environment


def delete_environment(
    session: Session, actor: Actor, project: Project, environment: Environment
) -> None:
    count = session.scalar(
        select(func.count()).select_from(Environment).where(Environment.project_id == project.id)
    )
    if count == 1:
        raise conflict("a project keeps at least one environment")
    before = environment_snapshot(environment)
    project.environments.remove(environment)
    session.delete(environment)
    for number, env in enumerate(project.environments):
        if env.position != number:
            # Its representation changed, so its ETag must too (as when _place moves it).
            env.position = number
            env.version += 1
    session.flush()
    audit.record(
        session,
        actor,
        "environment.delete",
        "environment",
        f"{project.key}/{before['key']}",
        project_key=project.key,
        before=before,
    )
