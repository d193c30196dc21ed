"""Request authentication and the declaration of what each route requires."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request, Response

from interlock.server.audit.service import Actor
from interlock.server.auth import credentials, service
from interlock.server.auth.roles import Action, allowed, can_see_project
from interlock.server.auth.service import Principal
from interlock.server.db.base import utcnow
from interlock.server.db.engine import Database
from interlock.server.problems import Problem, ProblemType, not_found
from interlock.server.projects import service as projects
from interlock.server.ratelimit import RateLimiter, enforce
from interlock.server.settings import Settings

SESSION_COOKIE = "interlock_session"
CSRF_COOKIE = "interlock_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.limiter
    return limiter


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def request_id(request: Request) -> str | None:
    rid: str | None = request.scope.get("state", {}).get("request_id")
    return rid


def _unauthenticated(detail: str) -> Problem:
    return Problem(
        ProblemType.UNAUTHENTICATED,
        detail,
        headers={"WWW-Authenticate": 'Bearer realm="interlock"'},
    )


def authenticate(
    request: Request,
    response: Response,
    db: Annotated[Database, Depends(get_db)],
    settings: Annotated[Settings, Depends(get_settings)],
    limiter: Annotated[RateLimiter, Depends(get_limiter)],
) -> Principal:
    """The caller, from `Authorization: Bearer KEY` or the UI's session cookie; 401 if neither."""
    enforce(limiter.hit(settings.rate_limit_per_ip, "ip", client_ip(request)), "from this address")
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _unauthenticated("use the header `Authorization: Bearer <API key>`")
        with db.read_session() as session:
            found = service.principal_from_key(session, value.strip())
        if found is None:
            raise _unauthenticated("the API key is unknown, expired or revoked")
        principal, key = found
        now = utcnow()
        if service.needs_last_used_update(key, now):
            with db.write_session() as session:
                service.touch_key(session, key.id, now)
    else:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise _unauthenticated("send an API key as `Authorization: Bearer <key>`, or log in")
        with db.read_session() as session:
            found_user = service.principal_from_session(session, token)
        if found_user is None:
            raise _unauthenticated("the session has expired; log in again")
        principal = found_user
        if request.method not in SAFE_METHODS:
            expected = credentials.csrf_token(request.app.state.secret_key, token)
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent, expected):
                raise Problem(
                    ProblemType.CSRF, f"send the {CSRF_COOKIE} cookie's value as {CSRF_HEADER}"
                )
    verdict = limiter.hit(settings.rate_limit_per_key, principal.kind, str(principal.id))
    enforce(verdict, "for this key or user")
    if verdict is not None:
        response.headers.update(verdict.headers())
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]

Scope = Literal["instance", "project", "environment", "any", "self"]


@dataclass(frozen=True, slots=True)
class Access:
    """What a route gets once authorized: who, and the ids of the project/environment."""

    principal: Principal
    actor: Actor
    project_id: int | None = None
    environment_id: int | None = None


class Requirement:
    """A route's declared need, e.g. `Depends(Requirement(Action.WRITE, "environment"))`.

    "project" and "environment" read `{project}` and `{environment}` from the path: a project
    the caller holds no grant on is a 404, so its existence does not leak. "any" means the
    action held anywhere (the route narrows by itself, e.g. a list shows what may be seen).
    "self" needs only a valid login or key (reading who you are, logging out).
    The authorization test finds every route's Requirement, so none can be forgotten.
    """

    def __init__(self, action: Action, scope: Scope) -> None:
        self.action = action
        self.scope = scope

    def __repr__(self) -> str:
        return f"Requirement({self.action.value!r}, {self.scope!r})"

    def __call__(
        self,
        request: Request,
        principal: CurrentPrincipal,
        db: Annotated[Database, Depends(get_db)],
    ) -> Access:
        actor = principal.actor(request_id(request))
        grants = principal.grants
        if self.scope == "self":
            return Access(principal, actor)
        if self.scope == "any":
            # Each grant is asked about its own scope: an environment-scoped admin holds
            # MANAGE nowhere, since managing is project-wide.
            if not any(allowed((g,), self.action, g.project_id, g.environment_id) for g in grants):
                raise self._forbidden()
            return Access(principal, actor)
        if self.scope == "instance":
            if not allowed(grants, self.action):
                raise self._forbidden()
            return Access(principal, actor)
        project_key = request.path_params["project"]
        with db.read_session() as session:
            project = projects.find_project(session, project_key)
            if project is None or not can_see_project(grants, project.id):
                raise not_found(f"project {project_key!r}")
            environment_id = None
            if self.scope == "environment":
                environment_key = request.path_params["environment"]
                environment_id = projects.get_environment(session, project, environment_key).id
        if not allowed(grants, self.action, project.id, environment_id):
            raise self._forbidden()
        return Access(principal, actor, project.id, environment_id)

    def _forbidden(self) -> Problem:
        return Problem(ProblemType.FORBIDDEN, f"this key or user may not {self.action.value} here")


def requires(action: Action, scope: Scope) -> object:
    return Depends(Requirement(action, scope))
