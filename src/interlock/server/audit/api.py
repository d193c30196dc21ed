"""GET /api/v1/audit (newest first) and a verification endpoint for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from interlock.server.audit import service
from interlock.server.audit.models import AuditEntry
from interlock.server.audit.schemas import AuditEntryOut, AuditPage, AuditVerification
from interlock.server.auth.deps import Access, Requirement, get_db
from interlock.server.auth.roles import Action, allowed, can_see_project
from interlock.server.auth.schemas import Moment
from interlock.server.db.engine import Database
from interlock.server.pagination import DEFAULT_PAGE_SIZE, Cursor, Limit
from interlock.server.problems import Problem, ProblemType, not_found
from interlock.server.projects import service as projects

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


def entry_out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        seq=entry.seq,
        at=entry.at,
        actor_type=entry.actor_type,
        actor_id=entry.actor_id,
        actor_name=entry.actor_name,
        action=entry.action,
        resource_type=entry.resource_type,
        resource_id=entry.resource_id,
        project=entry.project_key,
        before=entry.before,
        after=entry.after,
        request_id=entry.request_id,
        hash=entry.hash,
    )


@router.get("", response_model=AuditPage)
def list_audit(
    db: Annotated[Database, Depends(get_db)],
    access: Annotated[Access, Depends(Requirement(Action.MANAGE, "any"))],
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
    project: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    resource_type: Annotated[str | None, Query(max_length=64)] = None,
    resource_id: Annotated[str | None, Query(max_length=200)] = None,
    actor_id: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[
        Moment | None, Query(description="Entries at or after this time (with offset).")
    ] = None,
    until: Annotated[
        Moment | None, Query(description="Entries before this time (with offset).")
    ] = None,
) -> AuditPage:
    """Newest first. Instance admins see everything; project admins name their project.

    An instance admin may name a project that no longer exists: its history outlives it.
    """
    grants = access.principal.grants
    with db.read_session() as session:
        if not allowed(grants, Action.ADMINISTER):
            if project is None:
                raise Problem(
                    ProblemType.FORBIDDEN,
                    "project admins read the audit log of their project: add ?project=KEY",
                )
            found = projects.find_project(session, project)
            if found is None or not can_see_project(grants, found.id):
                raise not_found(f"project {project!r}")
            if not allowed(grants, Action.MANAGE, found.id):
                raise Problem(
                    ProblemType.FORBIDDEN, f"you may not read the audit log of project {project!r}"
                )
        items, next_cursor = service.list_entries(
            session,
            limit=limit,
            cursor=cursor,
            project_key=project,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            actor_id=actor_id,
            since=since,
            until=until,
        )
        return AuditPage(items=[entry_out(e) for e in items], next_cursor=next_cursor)


@router.get("/verify", response_model=AuditVerification)
def verify_audit(
    db: Annotated[Database, Depends(get_db)],
    access: Annotated[Access, Depends(Requirement(Action.ADMINISTER, "instance"))],
) -> AuditVerification:
    """Walk the whole chain, as `interlock audit verify` does."""
    with db.read_session() as session:
        result = service.verify(session)
    return AuditVerification(
        ok=result.ok,
        checked=result.checked,
        problem=result.problem,
        seq=result.seq,
        head_hash=result.head_hash,
    )
