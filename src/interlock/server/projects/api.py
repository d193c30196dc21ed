"""Routes for /api/v1/projects and their environments: parse, authorize, call, serialize."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response, status

from interlock.server.auth.deps import Access, Requirement, get_db
from interlock.server.auth.roles import Action
from interlock.server.concurrency import etag
from interlock.server.db.engine import Database
from interlock.server.pagination import DEFAULT_PAGE_SIZE, Cursor, Limit
from interlock.server.projects import service
from interlock.server.projects.models import Environment, Project
from interlock.server.projects.schemas import (
    EnvironmentCreate,
    EnvironmentOut,
    EnvironmentPage,
    EnvironmentUpdate,
    ProjectCreate,
    ProjectOut,
    ProjectPage,
    ProjectUpdate,
)

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])

Db = Annotated[Database, Depends(get_db)]
IfMatch = Annotated[str | None, Header(description="ETag of the version you read.")]


def project_out(project: Project) -> ProjectOut:
    return ProjectOut(
        key=project.key,
        name=project.name,
        description=project.description,
        version=project.version,
        created_at=project.created_at,
        updated_at=project.updated_at,
        environments=[environment_out(e) for e in project.environments],
    )


def environment_out(environment: Environment) -> EnvironmentOut:
    return EnvironmentOut.model_validate(environment, from_attributes=True)


@router.get("", response_model=ProjectPage)
def list_projects(
    db: Db,
    access: Annotated[Access, Depends(Requirement(Action.READ, "any"))],
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> ProjectPage:
    grants = access.principal.grants
    instance_wide = any(g.project_id is None for g in grants)
    visible = None if instance_wide else {g.project_id for g in grants if g.project_id is not None}
    with db.read_session() as session:
        items, next_cursor = service.list_projects(
            session, visible_ids=visible, limit=limit, cursor=cursor
        )
        return ProjectPage(items=[project_out(p) for p in items], next_cursor=next_cursor)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProjectOut)
def create_project(
    body: ProjectCreate,
    response: Response,
    db: Db,
    access: Annotated[Access, Depends(Requirement(Action.ADMINISTER, "instance"))],
) -> ProjectOut:
    environments = (
        [(e.key, e.name) for e in body.environments] if body.environments is not None else None
    )
    with db.write_session() as session:
        project = service.create_project(
            session,
            access.actor,
            key=body.key,
            name=body.name,
            description=body.description,
            environments=environments,
        )
        out = project_out(project)
    response.headers["ETag"] = etag(out.version)
    response.headers["Location"] = f"/api/v1/projects/{out.key}"
    return out


@router.get("/{project}", response_model=ProjectOut)
def get_project(
    project: str,
    response: Response,
    db: Db,
    access: Annotated[Access, Depends(Requirement(Action.READ, "project"))],
) -> ProjectOut:
    with db.read_session() as session:
        out = project_out(service.get_project(session, project))
    response.headers["ETag"] = etag(out.version)
    return out


@router.patch("/{project}", response_model=ProjectOut)
def update_project(
    project: str,
    body: ProjectUpdate,
    response: Response,
    db: Db,
    access: Annotated[Access, Depends(Requirement(Action.MANAGE, "project"))],
    if_match: IfMatch = None,
) -> ProjectOut:
    with db.write_session() as session:
        updated = service.update_project(
            session,
            access.actor,
            service.get_project(session, project),
            if_match=if_match,
            name=body.name,
            description=body.description,
        )
        out = project_out(updated)
    response.headers["ETag"] = etag(out.version)
    return out


@router.delete("/{project}", status_code=status.HTTP_204_NO_CONTENT)
def delete_project(
    project: str,
    db: Db,
    access: Annotated[Access, Depends(Requirement(Action.ADMINISTER, "project"))],
) -> Response:
    with db.write_session() as session:
        service.delete_project(session, access.actor, service.get_project(session, project))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{project}/environments", response_model=EnvironmentPage)
def list_environments(
    project: str,
    db: Db,
    access: Annotated[Access, Depends(Requirement(Action.READ, "project"))],
) -> EnvironmentPage:
    with db.read_session() as session:
        found = service.get_project(session, project)
        # At most MAX_ENVIRONMENTS per project, so one page always holds them all.
        return EnvironmentPage(
            items=[environment_out(e) for e in found.environments], next_cursor=None
        )


@router.post(
    "/{project}/environments", status_code=status.HTTP_201_CREATED, response_model=EnvironmentOut
)
def create_environment(
    project: str,
    body: EnvironmentCreate,
    response: Response,
    db: Db,
    access: Annotated[Access, Depends(Requirement(Action.MANAGE, "project"))],
) -> EnvironmentOut:
    with db.write_session() as session:
        environment = service.create_environment(
            session,
            access.actor,
            service.get_project(session, project),
            key=body.key,
            name=body.name,
            position=body.position,
        )
        out = environment_out(environment)
    response.headers["ETag"] = etag(out.version)
    response.headers["Location"] = f"/api/v1/projects/{project}/environments/{out.key}"
    return out


@router.get("/{project}/environments/{environment}", response_model=EnvironmentOut)
def get_environment(
    project: str,
    environment: str,
    response: Response,
    db: Db,
    access: Annotated[Access, Depends(Requirement(Action.READ, "environment"))],
) -> EnvironmentOut:
    with db.read_session() as session:
        found = service.get_project(session, project)
        out = environment_out(service.get_environment(session, found, environment))
    response.headers["ETag"] = etag(out.version)
    return out


@router.patch("/{project}/environments/{environment}", response_model=EnvironmentOut)
def update_environment(
    project: str,
    environment: str,
    body: EnvironmentUpdate,
    response: Response,
    db: Db,
    access: Annotated[Access, Depends(Requirement(Action.MANAGE, "project"))],
    if_match: IfMatch = None,
) -> EnvironmentOut:
    with db.write_session() as session:
        found = service.get_project(session, project)
        updated = service.update_environment(
            session,
            access.actor,
            found,
            service.get_environment(session, found, environment),
            if_match=if_match,
            name=body.name,
            position=body.position,
        )
        out = environment_out(updated)
    response.headers["ETag"] = etag(out.version)
    return out


@router.delete("/{project}/environments/{environment}", status_code=status.HTTP_204_NO_CONTENT)
def delete_environment(
    project: str,
    environment: str,
    db: Db,
    access: Annotated[Access, Depends(Requirement(Action.MANAGE, "project"))],
) -> Response:
    with db.write_session() as session:
        found = service.get_project(session, project)
        service.delete_environment(
            session, access.actor, found, service.get_environment(session, found, environment)
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
