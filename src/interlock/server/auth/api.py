"""Routes for logging in, users and API keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from sqlalchemy.orm import Session

from interlock.server.audit import service as audit
from interlock.server.auth import credentials, service
from interlock.server.auth.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Access,
    Requirement,
    client_ip,
    get_db,
    get_limiter,
    get_settings,
    request_id,
)
from interlock.server.auth.models import ApiKey, User
from interlock.server.auth.roles import Action, Grant, Role, allowed, can_see_project
from interlock.server.auth.schemas import (
    KeyCreate,
    KeyOut,
    KeyPage,
    KeyRevoke,
    LoginRequest,
    Me,
    RoleBindingIn,
    RoleBindingOut,
    SessionOut,
    UserCreate,
    UserOut,
    UserPage,
    UserUpdate,
)
from interlock.server.auth.service import Binding, Principal
from interlock.server.db.base import utcnow
from interlock.server.db.engine import Database
from interlock.server.pagination import DEFAULT_PAGE_SIZE, MAX_ID, Cursor, Limit
from interlock.server.problems import Problem, ProblemType, not_found
from interlock.server.projects import service as projects
from interlock.server.ratelimit import RateLimiter, enforce
from interlock.server.settings import Settings

router = APIRouter(prefix="/api/v1", tags=["auth"])

Db = Annotated[Database, Depends(get_db)]
Config = Annotated[Settings, Depends(get_settings)]
Limiter = Annotated[RateLimiter, Depends(get_limiter)]
Administer = Annotated[Access, Depends(Requirement(Action.ADMINISTER, "instance"))]
ManageSomewhere = Annotated[Access, Depends(Requirement(Action.MANAGE, "any"))]
# Larger ids were never given out, and cannot even be bound as a parameter (a 500).
Id = Annotated[int, Path(ge=1, le=MAX_ID)]


# ---------------------------------------------------------------- login


def user_out(session: Session, user: User) -> UserOut:
    roles = [
        RoleBindingOut.model_validate(service.describe_binding(session, b))
        for b in service.bindings_of(session, user.id)
    ]
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        active=user.active,
        created_at=user.created_at,
        roles=roles,
    )


@router.post(
    "/auth/login",
    response_model=SessionOut,
    tags=["auth"],
    responses={401: {"description": "Wrong email or password, or the account is inactive."}},
)
def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    db: Db,
    settings: Config,
    limiter: Limiter,
) -> SessionOut:
    """Open a UI session: sets the session cookie and the CSRF cookie."""
    enforce(limiter.hit(settings.rate_limit_login, "login-ip", client_ip(request)), "to log in")
    email = service.normalize_email(body.email)
    locked = limiter.test(settings.login_lockout, "login-fail", email)
    if locked is not None and not locked.allowed:
        raise Problem(
            ProblemType.RATE_LIMITED,
            f"too many failed logins for this account; retry in {locked.reset_seconds} s",
            headers=locked.headers(),
        )
    with db.read_session() as session:
        user = service.authenticate_password(
            session, email, body.password, settings.password_hash_cost
        )
    if user is None:
        limiter.hit(settings.login_lockout, "login-fail", email)
        raise Problem(
            ProblemType.UNAUTHENTICATED,
            "email or password is wrong",
            headers={"WWW-Authenticate": 'Bearer realm="interlock"'},
        )
    limiter.clear(settings.login_lockout, "login-fail", email)
    with db.write_session() as session:
        token = service.open_login_session(session, user, settings.session_hours)
        principal = Principal("user", user.id, user.email, ())
        audit.record(
            session, principal.actor(request_id(request)), "user.login", "user", str(user.id)
        )
        out_user = user_out(session, user)
    csrf = credentials.csrf_token(request.app.state.secret_key, token)
    secure = settings.public_base_url.startswith("https://")
    max_age = settings.session_hours * 3600
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="lax", secure=secure
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=max_age, httponly=False, samesite="strict", secure=secure
    )
    return SessionOut(
        user=out_user,
        csrf_token=csrf,
        expires_at=utcnow() + timedelta(hours=settings.session_hours),
    )


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(
    request: Request,
    db: Db,
    access: Annotated[Access, Depends(Requirement(Action.READ, "self"))],
) -> Response:
    """End this UI session (a key has no session: nothing to end)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token and access.principal.via_session:
        with db.write_session() as session:
            service.close_login_session(session, token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response


@router.get("/auth/me", response_model=Me)
def me(
    db: Db,
    access: Annotated[Access, Depends(Requirement(Action.READ, "self"))],
) -> Me:
    principal = access.principal
    with db.read_session() as session:
        roles = [_describe_grant(session, g) for g in principal.grants]
    return Me(kind=principal.kind, id=principal.id, name=principal.name, roles=roles)


def _describe_grant(session: Session, grant: Grant) -> RoleBindingOut:
    project, environment = service.scope_keys(session, grant.project_id, grant.environment_id)
    return RoleBindingOut(role=grant.role, project=project, environment=environment)


# ---------------------------------------------------------------- users


def resolve_bindings(session: Session, wanted: list[RoleBindingIn]) -> list[Binding]:
    bindings = []
    for index, item in enumerate(wanted):
        project = environment = None
        if item.project is not None:
            project = projects.find_project(session, item.project)
            if project is None:
                raise _invalid(f"/roles/{index}/project", f"no project {item.project!r}")
        if item.environment is not None:
            if project is None:
                raise _invalid(f"/roles/{index}/environment", "an environment needs its project")
            environment = next((e for e in project.environments if e.key == item.environment), None)
            if environment is None:
                raise _invalid(
                    f"/roles/{index}/environment",
                    f"project {project.key!r} has no environment {item.environment!r}",
                )
        bindings.append(Binding(item.role, project, environment))
    return bindings


def _invalid(pointer: str, detail: str) -> Problem:
    return Problem(
        ProblemType.VALIDATION,
        f"{pointer}: {detail}",
        errors=[{"pointer": pointer, "detail": detail}],
    )


@router.get("/users", response_model=UserPage, tags=["users"])
def list_users(
    db: Db, access: Administer, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None
) -> UserPage:
    with db.read_session() as session:
        items, next_cursor = service.list_users(session, limit=limit, cursor=cursor)
        return UserPage(items=[user_out(session, u) for u in items], next_cursor=next_cursor)


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut, tags=["users"])
def create_user(body: UserCreate, db: Db, settings: Config, access: Administer) -> UserOut:
    with db.write_session() as session:
        user = service.create_user(
            session,
            access.actor,
            email=body.email,
            password=body.password,
            name=body.name,
            bindings=resolve_bindings(session, body.roles),
            password_cost=settings.password_hash_cost,
        )
        return user_out(session, user)


@router.get("/users/{user_id}", response_model=UserOut, tags=["users"])
def get_user(user_id: Id, db: Db, access: Administer) -> UserOut:
    with db.read_session() as session:
        return user_out(session, service.get_user(session, user_id))


@router.patch("/users/{user_id}", response_model=UserOut, tags=["users"])
def update_user(
    user_id: Id, body: UserUpdate, db: Db, settings: Config, access: Administer
) -> UserOut:
    with db.write_session() as session:
        user = service.update_user(
            session,
            access.actor,
            service.get_user(session, user_id),
            name=body.name,
            active=body.active,
            password=body.password,
            bindings=resolve_bindings(session, body.roles) if body.roles is not None else None,
            password_cost=settings.password_hash_cost,
        )
        return user_out(session, user)


# ---------------------------------------------------------------- API keys


def key_out(session: Session, key: ApiKey, value: str | None = None) -> KeyOut:
    snapshot = service.key_snapshot(session, key)
    return KeyOut(
        id=key.id,
        name=key.name,
        role=Role(key.role),
        hint=key.hint,
        project=snapshot["project"],
        environment=snapshot["environment"],
        created_by=key.created_by,
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
        value=value or key.public_value,
    )


def _may_manage_key(grants: tuple[Grant, ...], project_id: int | None) -> bool:
    if project_id is None:
        return allowed(grants, Action.ADMINISTER)
    return allowed(grants, Action.MANAGE, project_id)


def _managed_project_ids(grants: tuple[Grant, ...]) -> set[int] | None:
    if allowed(grants, Action.ADMINISTER):
        return None
    return {
        g.project_id
        for g in grants
        if g.project_id is not None and allowed(grants, Action.MANAGE, g.project_id)
    }


@router.get("/keys", response_model=KeyPage, tags=["keys"])
def list_keys(
    db: Db,
    access: ManageSomewhere,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
    include_revoked: bool = False,
) -> KeyPage:
    """The keys you manage: all of them for instance admins, your projects' otherwise."""
    with db.read_session() as session:
        items, next_cursor = service.list_keys(
            session,
            project_ids=_managed_project_ids(access.principal.grants),
            limit=limit,
            cursor=cursor,
            include_revoked=include_revoked,
        )
        return KeyPage(items=[key_out(session, k) for k in items], next_cursor=next_cursor)


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyOut, tags=["keys"])
def create_key(body: KeyCreate, db: Db, access: ManageSomewhere) -> KeyOut:
    """Create a key. Its value is in the response this once: store it now."""
    grants = access.principal.grants
    with db.write_session() as session:
        project = environment = None
        if body.project is not None:
            project = projects.find_project(session, body.project)
            if project is None or not can_see_project(grants, project.id):
                raise _invalid("/project", f"no project {body.project!r}")
            if body.environment is not None:
                environment = next(
                    (e for e in project.environments if e.key == body.environment), None
                )
                if environment is None:
                    raise _invalid(
                        "/environment",
                        f"project {project.key!r} has no environment {body.environment!r}",
                    )
        elif body.environment is not None:
            raise _invalid("/environment", "an environment needs its project")
        if not _may_manage_key(grants, project.id if project else None):
            raise Problem(ProblemType.FORBIDDEN, "you may not create keys there")
        key, value = service.create_key(
            session,
            access.actor,
            name=body.name,
            role=body.role,
            project=project,
            environment=environment,
            expires_at=body.expires_at,
        )
        return key_out(session, key, value)


def _visible_key(session: Session, principal: Principal, key_id: int) -> ApiKey:
    key = service.get_key(session, key_id)
    if not _may_manage_key(principal.grants, key.project_id):
        raise not_found(f"API key {key_id}")
    return key


@router.get("/keys/{key_id}", response_model=KeyOut, tags=["keys"])
def get_key(key_id: Id, db: Db, access: ManageSomewhere) -> KeyOut:
    with db.read_session() as session:
        return key_out(session, _visible_key(session, access.principal, key_id))


@router.post("/keys/{key_id}/revoke", response_model=KeyOut, tags=["keys"])
def revoke_key(
    key_id: Id, db: Db, access: ManageSomewhere, body: KeyRevoke | None = None
) -> KeyOut:
    """Revoke now, or at `at` so a replacement can be rolled out before this one stops."""
    with db.write_session() as session:
        key = _visible_key(session, access.principal, key_id)
        return key_out(
            session, service.revoke_key(session, access.actor, key, body.at if body else None)
        )
