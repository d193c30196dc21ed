"""Who may do what: `roles.allowed` over every role, grant scope, target and action.

Database-free: grants and targets are plain ids. Project 1 has environments 11 (staging)
and 12 (production); project 2 has environment 21.
"""

from __future__ import annotations

import pytest

from interlock.server.auth.roles import Action, Grant, Role, allowed, can_see_project

PROJECT, STAGING, PRODUCTION = 1, 11, 12
OTHER_PROJECT, OTHER_ENV = 2, 21

READ, WRITE, MANAGE, ADMINISTER = Action.READ, Action.WRITE, Action.MANAGE, Action.ADMINISTER
EVALUATE, READ_CONFIG = Action.EVALUATE, Action.READ_CONFIG
EVERYTHING = frozenset(Action)

# What each role can do at all, written out rather than imported, so a change shows here.
ROLE_CAN: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset({READ, WRITE, MANAGE, ADMINISTER}),
    Role.EDITOR: frozenset({READ, WRITE}),
    Role.VIEWER: frozenset({READ}),
    Role.SDK_SERVER: frozenset({EVALUATE, READ_CONFIG}),
    Role.SDK_CLIENT: frozenset({EVALUATE}),
}

GRANT_SCOPES: dict[str, tuple[int | None, int | None]] = {
    "instance": (None, None),
    "project": (PROJECT, None),
    "staging": (PROJECT, STAGING),
}

TARGETS: dict[str, tuple[int | None, int | None]] = {
    "instance": (None, None),
    "project": (PROJECT, None),
    "staging": (PROJECT, STAGING),
    "production": (PROJECT, PRODUCTION),
    "other project": (OTHER_PROJECT, None),
    "other project's environment": (OTHER_PROJECT, OTHER_ENV),
}

# Which actions a grant of this scope reaches on this target (before the role narrows them).
NOTHING: frozenset[Action] = frozenset()
IN_PROJECT = EVERYTHING - {ADMINISTER}
REACHES: dict[tuple[str, str], frozenset[Action]] = {
    ("instance", "instance"): EVERYTHING,
    ("instance", "project"): EVERYTHING,
    ("instance", "staging"): EVERYTHING,
    ("instance", "production"): EVERYTHING,
    ("instance", "other project"): EVERYTHING,
    ("instance", "other project's environment"): EVERYTHING,
    ("project", "instance"): NOTHING,
    ("project", "project"): IN_PROJECT,
    ("project", "staging"): IN_PROJECT,
    ("project", "production"): IN_PROJECT,
    ("project", "other project"): NOTHING,
    ("project", "other project's environment"): NOTHING,
    ("staging", "instance"): NOTHING,
    # An environment grant sees its project (to find its environment) but cannot change it.
    ("staging", "project"): frozenset({READ, EVALUATE, READ_CONFIG}),
    # Managing (keys, members, environments) is project-wide, even within one's environment.
    ("staging", "staging"): IN_PROJECT - {MANAGE},
    ("staging", "production"): NOTHING,
    ("staging", "other project"): NOTHING,
    ("staging", "other project's environment"): NOTHING,
}


@pytest.mark.parametrize("scope", list(GRANT_SCOPES))
@pytest.mark.parametrize("role", list(Role), ids=str)
def test_a_grant_allows_exactly_its_roles_actions_within_its_scope(role: Role, scope: str) -> None:
    grant = Grant(role, *GRANT_SCOPES[scope])
    wrong = []
    for target, (project_id, environment_id) in TARGETS.items():
        for action in Action:
            expected = action in ROLE_CAN[role] and action in REACHES[scope, target]
            got = allowed((grant,), action, project_id, environment_id)
            if got != expected:
                wrong.append(f"{action} on {target}: expected {expected}, got {got}")
    assert not wrong, "\n".join(wrong)


def test_an_editor_on_staging_may_write_staging_and_not_production() -> None:
    grants = (Grant(Role.EDITOR, PROJECT, STAGING),)
    assert allowed(grants, WRITE, PROJECT, STAGING)
    assert not allowed(grants, WRITE, PROJECT, PRODUCTION)
    assert not allowed(grants, WRITE, PROJECT)


def test_an_environment_grant_reads_the_project_but_cannot_manage_it() -> None:
    grants = (Grant(Role.ADMIN, PROJECT, STAGING),)
    assert allowed(grants, READ, PROJECT)
    assert not allowed(grants, MANAGE, PROJECT)
    assert not allowed(grants, MANAGE, PROJECT, STAGING)
    assert not allowed(grants, ADMINISTER)


@pytest.mark.parametrize("role", [Role.SDK_SERVER, Role.SDK_CLIENT], ids=str)
@pytest.mark.parametrize("scope", list(GRANT_SCOPES))
def test_sdk_roles_cannot_read_management_data(role: Role, scope: str) -> None:
    grants = (Grant(role, *GRANT_SCOPES[scope]),)
    for project_id, environment_id in TARGETS.values():
        for action in (READ, WRITE, MANAGE, ADMINISTER):
            assert not allowed(grants, action, project_id, environment_id)


def test_only_an_instance_wide_admin_administers() -> None:
    assert allowed((Grant(Role.ADMIN),), ADMINISTER)
    assert not allowed((Grant(Role.ADMIN, PROJECT),), ADMINISTER)
    assert not allowed((Grant(Role.ADMIN, PROJECT),), ADMINISTER, PROJECT)
    assert not allowed((Grant(Role.EDITOR),), ADMINISTER)


def test_grants_add_up() -> None:
    grants = (Grant(Role.VIEWER, PROJECT), Grant(Role.EDITOR, PROJECT, STAGING))
    assert allowed(grants, READ, PROJECT, PRODUCTION)
    assert allowed(grants, WRITE, PROJECT, STAGING)
    assert not allowed(grants, WRITE, PROJECT, PRODUCTION)
    assert not allowed(grants, READ, OTHER_PROJECT)


def test_no_grants_allow_nothing() -> None:
    for action in Action:
        assert not allowed((), action)
        assert not allowed((), action, PROJECT, STAGING)


@pytest.mark.parametrize(
    ("grants", "visible"),
    [
        ((Grant(Role.VIEWER),), {PROJECT, OTHER_PROJECT}),
        ((Grant(Role.VIEWER, PROJECT),), {PROJECT}),
        ((Grant(Role.EDITOR, PROJECT, STAGING),), {PROJECT}),
        ((Grant(Role.SDK_CLIENT, OTHER_PROJECT, OTHER_ENV),), {OTHER_PROJECT}),
        ((), set()),
    ],
)
def test_a_project_exists_only_for_grants_that_reach_it(
    grants: tuple[Grant, ...], visible: set[int]
) -> None:
    assert {p for p in (PROJECT, OTHER_PROJECT) if can_see_project(grants, p)} == visible
