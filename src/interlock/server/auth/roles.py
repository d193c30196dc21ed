"""Roles, actions and the one function that decides who may do what. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"
    SDK_SERVER = "sdk-server"
    SDK_CLIENT = "sdk-client"


class Action(StrEnum):
    READ = "read"  # read a project's resources
    WRITE = "write"  # change an environment's configuration
    MANAGE = "manage"  # change a project itself: environments, keys, members, its audit log
    ADMINISTER = "administer"  # instance-wide: create projects, manage users, read all audit
    EVALUATE = "evaluate"  # evaluation endpoints (OFREP)
    READ_CONFIG = "read-config"  # whole environment configs, for server-side SDKs


ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset({Action.READ, Action.WRITE, Action.MANAGE, Action.ADMINISTER}),
    Role.EDITOR: frozenset({Action.READ, Action.WRITE}),
    Role.VIEWER: frozenset({Action.READ}),
    Role.SDK_SERVER: frozenset({Action.EVALUATE, Action.READ_CONFIG}),
    Role.SDK_CLIENT: frozenset({Action.EVALUATE}),
}
MANAGEMENT_ROLES = frozenset({Role.ADMIN, Role.EDITOR, Role.VIEWER})
SDK_ROLES = frozenset({Role.SDK_SERVER, Role.SDK_CLIENT})
# Ranks for "may not hand out more than you hold".
ROLE_RANK = {Role.VIEWER: 1, Role.EDITOR: 2, Role.ADMIN: 3, Role.SDK_CLIENT: 1, Role.SDK_SERVER: 1}


@dataclass(frozen=True, slots=True)
class Grant:
    """A role held on the whole instance, one project, or one environment of a project."""

    role: Role
    project_id: int | None = None
    environment_id: int | None = None


def can_see_project(grants: tuple[Grant, ...], project_id: int) -> bool:
    """Whether the project exists as far as these grants are concerned (else it is a 404)."""
    return any(g.project_id is None or g.project_id == project_id for g in grants)


def allowed(
    grants: tuple[Grant, ...],
    action: Action,
    project_id: int | None = None,
    environment_id: int | None = None,
) -> bool:
    """Whether any grant permits `action` on the instance, a project, or an environment.

    Instance-wide actions need an instance-wide grant, and managing a project needs a grant
    on the whole project. An environment-scoped grant acts only in its environment; on the
    project as a whole it gives reading at most.
    """
    for grant in grants:
        if action not in ROLE_ACTIONS[grant.role]:
            continue
        if action is Action.ADMINISTER:
            if grant.project_id is None:
                return True
            continue
        if action is Action.MANAGE and grant.environment_id is not None:
            continue
        if grant.project_id is not None and grant.project_id != project_id:
            continue
        if grant.environment_id is None:
            return True
        if environment_id is not None:
            if grant.environment_id == environment_id:
                return True
        elif action in (Action.READ, Action.EVALUATE, Action.READ_CONFIG):
            return True
    return False
