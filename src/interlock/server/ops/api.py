"""Operations endpoints. None of them needs a key."""

from __future__ import annotations

import platform
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import text

import interlock
from interlock.server.auth.deps import get_db
from interlock.server.db.engine import Database
from interlock.server.db.migrate import current_revision, head_revision
from interlock.server.ops.metrics import render_metrics
from interlock.server.problems import DESCRIPTIONS, STATUS_TITLES, ProblemType, not_found

router = APIRouter(tags=["operations"])

# Routes anyone may call; the authorization test checks that nothing else is in this list.
PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/version",
        "/problems/{slug}",
        "/api/v1/auth/login",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
    }
)


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    schema_revision: str | None
    expected_revision: str | None


class Version(BaseModel):
    version: str
    python: str
    database: str


class ProblemTypeDoc(BaseModel):
    type: str
    status: int
    title: str
    description: str


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive (it answers); says nothing of the database."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready"}},
)
def readyz(db: Annotated[Database, Depends(get_db)]) -> Any:
    """Ready to serve: the database answers and its schema is the one this code needs."""
    try:
        with db.read_session() as session:
            session.execute(text("SELECT 1"))
        current = current_revision(db.engine)
    except Exception as exc:
        body = Readiness(
            status="unavailable",
            database=f"unreachable: {type(exc).__name__}",
            schema_revision=None,
            expected_revision=head_revision(db.engine),
        )
        return JSONResponse(body.model_dump(), status_code=503)
    expected = head_revision(db.engine)
    body = Readiness(
        status="ok" if current == expected else "unavailable",
        database="ok",
        schema_revision=current,
        expected_revision=expected,
    )
    return JSONResponse(body.model_dump(), status_code=200 if current == expected else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics() -> Response:
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)


@router.get("/api/v1/version", response_model=Version)
def version(db: Annotated[Database, Depends(get_db)]) -> Version:
    return Version(
        version=interlock.__version__,
        python=platform.python_version(),
        database=db.engine.dialect.name,
    )


@router.get("/problems/{slug}", response_model=ProblemTypeDoc)
def problem_type(slug: str) -> ProblemTypeDoc:
    """What a problem `type` of ours means."""
    try:
        kind = ProblemType(slug)
    except ValueError:
        raise not_found(f"problem type {slug!r}") from None
    status, title = STATUS_TITLES[kind]
    return ProblemTypeDoc(
        type=kind.uri, status=status, title=title, description=DESCRIPTIONS.get(kind, title)
    )
