"""Users, role bindings, login sessions and API keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import Session

from interlock.server.audit import service as audit
from interlock.server.audit.service import Actor
from interlock.server.auth import credentials
from interlock.server.auth.models import ApiKey, LoginSession, RoleBinding, User
from interlock.server.auth.roles import SDK_ROLES, Grant, Role
from interlock.server.db.base import utcnow
from interlock.server.pagination import paginate
from interlock.server.problems import Problem, ProblemType, conflict, not_found
from interlock.server.projects.models import Environment, Project

LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (by session cookie) or an API key, with what they hold."""

    kind: str  # "user" | "key"
    id: int
    name: str
    grants: tuple[Grant, ...]
    via_session: bool = False

    def actor(self, request_id: str | None) -> Actor:
        return Actor(type=self.kind, id=str(self.id), name=self.name, request_id=request_id)


@dataclass(frozen=True, slots=True)
class Binding:
    role: Role
    project: Project | None = None
    environment: Environment | None = None


# ---------------------------------------------------------------- users


def normalize_email(email: str) -> str:
    return email.strip().lower()


def user_snapshot(session: Session, user: User) -> dict[str, Any]:
    return {
        "email": user.email,
        "name": user.name,
        "active": user.active,
        "roles": [describe_binding(session, b) for b in bindings_of(session, user.id)],
    }


def scope_keys(
    session: Session, project_id: int | None, environment_id: int | None
) -> tuple[str | None, str | None]:
    """The keys of a grant's, binding's or API key's project and environment (None: unscoped)."""
    project = session.get(Project, project_id) if project_id else None
    environment = session.get(Environment, environment_id) if environment_id else None
    return (project.key if project else None, environment.key if environment else None)


def describe_binding(session: Session, binding: RoleBinding) -> dict[str, Any]:
    project, environment = scope_keys(session, binding.project_id, binding.environment_id)
    return {"role": binding.role, "project": project, "environment": environment}


def bindings_of(session: Session, user_id: int) -> Sequence[RoleBinding]:
    return session.scalars(
        select(RoleBinding).where(RoleBinding.user_id == user_id).order_by(RoleBinding.id)
    ).all()


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalize_email(email)))


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise not_found(f"user {user_id}")
    return user


def list_users(
    session: Session, *, limit: int, cursor: str | None
) -> tuple[Sequence[User], str | None]:
    return paginate(session, select(User), User.id, limit=limit, cursor=cursor)


def create_user(
    session: Session,
    actor: Actor,
    *,
    email: str,
    password: str,
    name: str = "",
    bindings: Sequence[Binding] = (),
    password_cost: str = "default",
) -> User:
    email = normalize_email(email)
    if find_user(session, email) is not None:
        raise conflict(f"a user with email {email!r} already exists")
    user = User(
        email=email, name=name, password_hash=credentials.hash_password(password, password_cost)
    )
    session.add(user)
    session.flush()
    _replace_bindings(session, user, bindings)
    audit.record(
        session, actor, "user.create", "user", str(user.id), after=user_snapshot(session, user)
    )
    return user


def _replace_bindings(session: Session, user: User, bindings: Sequence[Binding]) -> None:
    seen = set()
    for index, binding in enumerate(bindings):
        if binding.role in SDK_ROLES:
            raise _invalid_role(f"/roles/{index}/role", f"role {binding.role} is for API keys only")
        scope = (
            binding.project.id if binding.project else None,
            binding.environment.id if binding.environment else None,
        )
        if scope in seen:
            raise _invalid_role(
                f"/roles/{index}", "a user holds one role per instance, project or environment"
            )
        seen.add(scope)
    session.execute(delete(RoleBinding).where(RoleBinding.user_id == user.id))
    for binding in bindings:
        session.add(
            RoleBinding(
                user_id=user.id,
                role=binding.role.value,
                project_id=binding.project.id if binding.project else None,
                environment_id=binding.environment.id if binding.environment else None,
            )
        )
    session.flush()


def _invalid_role(pointer: str, detail: str) -> Problem:
    return Problem(ProblemType.VALIDATION, detail, errors=[{"pointer": pointer, "detail": detail}])


def update_user(
    session: Session,
    actor: Actor,
    user: User,
    *,
    name: str | None = None,
    active: bool | None = None,
    password: str | None = None,
    bindings: Sequence[Binding] | None = None,
    password_cost: str = "default",
) -> User:
    before = user_snapshot(session, user)
    if name is not None:
        user.name = name
    if active is not None:
        user.active = active
    if password is not None:
        user.password_hash = credentials.hash_password(password, password_cost)
    if bindings is not None:
        _replace_bindings(session, user, bindings)
    if active is False or password is not None:
        # A deactivated user or a changed password ends every open session.
        session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    user.version += 1
    session.flush()
    after = user_snapshot(session, user)
    if password is not None:
        after["password"] = "changed"
    audit.record(session, actor, "user.update", "user", str(user.id), before=before, after=after)
    return user


def grants_of_user(session: Session, user_id: int) -> tuple[Grant, ...]:
    return tuple(
        Grant(Role(b.role), b.project_id, b.environment_id) for b in bindings_of(session, user_id)
    )


# ---------------------------------------------------------------- login sessions


def authenticate_password(
    session: Session, email: str, password: str, password_cost: str
) -> User | None:
    user = find_user(session, email)
    if user is None or not user.active:
        credentials.dummy_verify(password_cost)
        return None
    return user if credentials.verify_password(user.password_hash, password) else None


def sweep_expired_sessions(session: Session, now: datetime) -> int:
    """Delete login sessions that have expired; returns how many."""
    result = session.execute(delete(LoginSession).where(LoginSession.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)


def open_login_session(session: Session, user: User, hours: int) -> str:
    token = credentials.new_session_token()
    now = utcnow()
    sweep_expired_sessions(session, now)
    session.add(
        LoginSession(
            digest=credentials.digest(token),
            user_id=user.id,
            expires_at=now + timedelta(hours=hours),
        )
    )
    session.flush()
    return token


def close_login_session(session: Session, token: str) -> None:
    session.execute(delete(LoginSession).where(LoginSession.digest == credentials.digest(token)))


def principal_from_session(session: Session, token: str) -> Principal | None:
    row = session.execute(
        select(LoginSession, User)
        .join(User, User.id == LoginSession.user_id)
        .where(LoginSession.digest == credentials.digest(token))
    ).first()
    if row is None:
        return None
    login, user = row
    if login.expires_at <= utcnow() or not user.active:
        return None
    return Principal(
        "user", user.id, user.email, grants_of_user(session, user.id), via_session=True
    )


# ---------------------------------------------------------------- API keys


def key_snapshot(session: Session, key: ApiKey) -> dict[str, Any]:
    project, environment = scope_keys(session, key.project_id, key.environment_id)
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role,
        "hint": key.hint,
        "project": project,
        "environment": environment,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def create_key(
    session: Session,
    actor: Actor,
    *,
    name: str,
    role: Role,
    project: Project | None = None,
    environment: Environment | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its value, which is shown this once (sdk-client keys: always)."""
    if role in SDK_ROLES and environment is None:
        raise Problem(
            ProblemType.VALIDATION,
            f"an {role} key belongs to one environment: give project and environment",
            errors=[{"pointer": "/environment", "detail": "required for SDK keys"}],
        )
    if role is not Role.ADMIN and project is None:
        raise Problem(
            ProblemType.VALIDATION,
            f"only admin keys may be instance-wide: give a project for this {role} key",
            errors=[{"pointer": "/project", "detail": "required for this role"}],
        )
    if expires_at is not None and expires_at <= utcnow():
        raise Problem(
            ProblemType.VALIDATION,
            "expires_at is in the past",
            errors=[{"pointer": "/expires_at", "detail": "must be in the future"}],
        )
    value = credentials.new_api_key(role)
    key = ApiKey(
        name=name,
        role=role.value,
        digest=credentials.digest(value),
        hint=credentials.key_hint(value),
        public_value=value if role is Role.SDK_CLIENT else None,
        project_id=project.id if project else None,
        environment_id=environment.id if environment else None,
        created_by=actor.name,
        expires_at=expires_at,
    )
    session.add(key)
    session.flush()
    audit.record(
        session,
        actor,
        "key.create",
        "api_key",
        str(key.id),
        project_key=project.key if project else None,
        after=key_snapshot(session, key),
    )
    return key, value


def get_key(session: Session, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise not_found(f"API key {key_id}")
    return key


def list_keys(
    session: Session,
    *,
    project_ids: set[int] | None,
    limit: int,
    cursor: str | None,
    include_revoked: bool = False,
) -> tuple[Sequence[ApiKey], str | None]:
    statement: Select[tuple[ApiKey]] = select(ApiKey)
    if project_ids is not None:
        statement = statement.where(ApiKey.project_id.in_(project_ids))
    if not include_revoked:
        statement = statement.where((ApiKey.revoked_at.is_(None)) | (ApiKey.revoked_at > utcnow()))
    return paginate(session, statement, ApiKey.id, limit=limit, cursor=cursor)


def revoke_key(session: Session, actor: Actor, key: ApiKey, at: datetime | None = None) -> ApiKey:
    """Revoke now, or at a later time so a replacement can be rolled out first."""
    now = utcnow()
    when = now if at is None or at < now else at
    if key.revoked_at is not None and key.revoked_at <= now:
        raise conflict(f"API key {key.id} is already revoked")
    before = key_snapshot(session, key)
    key.revoked_at = when
    session.flush()
    audit.record(
        session,
        actor,
        "key.revoke",
        "api_key",
        str(key.id),
        project_key=before["project"],
        before=before,
        after=key_snapshot(session, key),
    )
    return key


def key_is_live(key: ApiKey, now: datetime) -> bool:
    if key.expires_at is not None and key.expires_at <= now:
        return False
    return key.revoked_at is None or key.revoked_at > now


def principal_from_key(session: Session, value: str) -> tuple[Principal, ApiKey] | None:
    """The key's principal, or None for an unknown, expired or revoked key."""
    if not credentials.looks_like_api_key(value):
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.digest == credentials.digest(value)))
    if key is None or not key_is_live(key, utcnow()):
        return None
    grant = Grant(Role(key.role), key.project_id, key.environment_id)
    return Principal("key", key.id, f"key:{key.name}", (grant,)), key


def needs_last_used_update(key: ApiKey, now: datetime) -> bool:
    return key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION


def touch_key(session: Session, key_id: int, now: datetime) -> None:
    """Record use at most once a minute: the condition makes racing replicas write once."""
    session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .where(
            (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at <= now - LAST_USED_RESOLUTION)
        )
        .values(last_used_at=now)
    )
