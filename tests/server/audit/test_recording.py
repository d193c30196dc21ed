"""Every mutation writes one audit entry, in its own transaction; a failed one writes none."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from interlock.server.audit.service import verify
from interlock.server.auth import service as auth
from interlock.server.auth.roles import Role
from interlock.server.db.base import utcnow
from interlock.server.db.engine import Database
from interlock.server.projects import service as projects
from tests.helpers import TEST_ACTOR, assert_problem
from tests.server.audit.chain import entries_after, last_seq

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class World:
    """An instance with a project `shop`, a viewer `ada` and an editor key `ci` on it."""

    client: TestClient
    admin_key_id: int
    user_id: int
    key_id: int


@pytest.fixture
def world(admin: TestClient, db: Database) -> World:
    with db.write_session() as session:
        shop = projects.create_project(session, TEST_ACTOR, key="shop", name="Shop")
        user = auth.create_user(
            session,
            TEST_ACTOR,
            email="ada@example.com",
            password=PASSWORD,
            bindings=[auth.Binding(Role.VIEWER, shop)],
            password_cost="minimum",
        )
        key, _ = auth.create_key(session, TEST_ACTOR, name="ci", role=Role.EDITOR, project=shop)
        user_id, key_id = user.id, key.id
    me = admin.get("/api/v1/auth/me").json()
    return World(admin, me["id"], user_id, key_id)


def etag_of(world: World, path: str) -> str:
    tag: str = world.client.get(path).headers["ETag"]
    return tag


@dataclass(frozen=True)
class Mutation:
    name: str
    route: str  # "METHOD /path/{template}", as the OpenAPI document names it
    act: Callable[[World, dict[str, str]], httpx.Response]
    action: str
    resource_type: str
    resource_id: Callable[[World], str]
    project: str | None
    # Fields the before/after snapshots must hold; None: there is no snapshot.
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    by_user: bool = False  # the actor is user `ada`, not the admin key
    status: int = field(default=200)


MUTATIONS = [
    Mutation(
        "project create",
        "POST /api/v1/projects",
        lambda w, h: w.client.post(
            "/api/v1/projects", json={"key": "web", "name": "Web"}, headers=h
        ),
        "project.create",
        "project",
        lambda w: "web",
        "web",
        after={
            "key": "web",
            "name": "Web",
            "environments": ["development", "staging", "production"],
        },
        status=201,
    ),
    Mutation(
        "project update",
        "PATCH /api/v1/projects/{project}",
        lambda w, h: w.client.patch(
            "/api/v1/projects/shop",
            json={"name": "Shop ünïcødé"},
            headers=h | {"If-Match": etag_of(w, "/api/v1/projects/shop")},
        ),
        "project.update",
        "project",
        lambda w: "shop",
        "shop",
        before={"name": "Shop", "version": 1},
        after={"name": "Shop ünïcødé", "version": 2},
    ),
    Mutation(
        "project delete",
        "DELETE /api/v1/projects/{project}",
        lambda w, h: w.client.delete("/api/v1/projects/shop", headers=h),
        "project.delete",
        "project",
        lambda w: "shop",
        "shop",
        before={"key": "shop", "name": "Shop"},
        status=204,
    ),
    Mutation(
        "environment create",
        "POST /api/v1/projects/{project}/environments",
        lambda w, h: w.client.post(
            "/api/v1/projects/shop/environments", json={"key": "qa", "name": "QA"}, headers=h
        ),
        "environment.create",
        "environment",
        lambda w: "shop/qa",
        "shop",
        after={"key": "qa", "name": "QA", "position": 3},
        status=201,
    ),
    Mutation(
        "environment update",
        "PATCH /api/v1/projects/{project}/environments/{environment}",
        lambda w, h: w.client.patch(
            "/api/v1/projects/shop/environments/staging",
            json={"name": "Pre-production"},
            headers=h | {"If-Match": etag_of(w, "/api/v1/projects/shop/environments/staging")},
        ),
        "environment.update",
        "environment",
        lambda w: "shop/staging",
        "shop",
        before={"name": "Staging"},
        after={"name": "Pre-production"},
    ),
    Mutation(
        "environment delete",
        "DELETE /api/v1/projects/{project}/environments/{environment}",
        lambda w, h: w.client.delete("/api/v1/projects/shop/environments/staging", headers=h),
        "environment.delete",
        "environment",
        lambda w: "shop/staging",
        "shop",
        before={"key": "staging"},
        status=204,
    ),
    Mutation(
        "user create",
        "POST /api/v1/users",
        lambda w, h: w.client.post(
            "/api/v1/users",
            json={
                "email": "grace@example.com",
                "password": PASSWORD,
                "roles": [{"role": "editor", "project": "shop", "environment": "staging"}],
            },
            headers=h,
        ),
        "user.create",
        "user",
        lambda w: str(w.user_id + 1),
        None,
        after={
            "email": "grace@example.com",
            "roles": [{"role": "editor", "project": "shop", "environment": "staging"}],
        },
        status=201,
    ),
    Mutation(
        "user update",
        "PATCH /api/v1/users/{user_id}",
        lambda w, h: w.client.patch(
            f"/api/v1/users/{w.user_id}",
            json={"active": False, "password": PASSWORD * 2},
            headers=h,
        ),
        "user.update",
        "user",
        lambda w: str(w.user_id),
        None,
        before={"active": True},
        after={"active": False, "password": "changed"},
    ),
    Mutation(
        "key create",
        "POST /api/v1/keys",
        lambda w, h: w.client.post(
            "/api/v1/keys", json={"name": "deploy", "role": "viewer", "project": "shop"}, headers=h
        ),
        "key.create",
        "api_key",
        lambda w: str(w.key_id + 1),
        "shop",
        after={"name": "deploy", "role": "viewer", "project": "shop", "revoked_at": None},
        status=201,
    ),
    Mutation(
        "key revoke",
        "POST /api/v1/keys/{key_id}/revoke",
        lambda w, h: w.client.post(f"/api/v1/keys/{w.key_id}/revoke", headers=h),
        "key.revoke",
        "api_key",
        lambda w: str(w.key_id),
        "shop",
        before={"name": "ci", "revoked_at": None},
        after={"name": "ci"},
    ),
    Mutation(
        "login",
        "POST /api/v1/auth/login",
        lambda w, h: w.client.post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}, headers=h
        ),
        "user.login",
        "user",
        lambda w: str(w.user_id),
        None,
        by_user=True,
    ),
]


# Mutating routes whose audit entries are tested elsewhere, or that write none, and why.
AUDITED_ELSEWHERE = {
    "POST /api/v1/jobs": "tests/server/jobs",
    "POST /api/v1/jobs/{job_id}/cancel": "tests/server/jobs",
    "POST /api/v1/jobs/{job_id}/retry": "tests/server/jobs",
}
NOT_AUDITED = {
    "POST /api/v1/auth/logout": "ends the caller's own session; login is what is audited",
}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_mutating_route_is_in_the_table_above(app: FastAPI) -> None:
    """A route added tomorrow fails here until its audit entry is tested (or excused)."""
    mutating = {
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method in {"post", "put", "patch", "delete"}
    }
    covered = {m.route for m in MUTATIONS} | set(AUDITED_ELSEWHERE) | set(NOT_AUDITED)
    assert mutating - covered == set(), "mutating routes with no audit test"
    assert covered - mutating == set(), "the table names routes the app does not have"


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_every_mutation_writes_one_entry_saying_who_what_when_and_which_request(
    world: World, db: Database, mutation: Mutation
) -> None:
    seq = last_seq(db)
    request_id = f"req-{mutation.name.replace(' ', '-')}"
    started = utcnow()
    response = mutation.act(world, {"X-Request-ID": request_id})
    finished = utcnow()
    assert response.status_code == mutation.status, response.text

    written = entries_after(db, seq)
    assert len(written) == 1, [e.action for e in written]
    entry = written[0]
    if mutation.by_user:
        assert (entry.actor_type, entry.actor_id, entry.actor_name) == (
            "user",
            str(world.user_id),
            "ada@example.com",
        )
    else:
        assert (entry.actor_type, entry.actor_id, entry.actor_name) == (
            "key",
            str(world.admin_key_id),
            "key:test admin",
        )
    assert (entry.action, entry.resource_type, entry.resource_id, entry.project_key) == (
        mutation.action,
        mutation.resource_type,
        mutation.resource_id(world),
        mutation.project,
    )
    assert started <= entry.at <= finished
    assert entry.request_id == request_id
    for expected, snapshot in ((mutation.before, entry.before), (mutation.after, entry.after)):
        if expected is None:
            assert snapshot is None
        else:
            assert snapshot is not None
            assert {k: snapshot.get(k) for k in expected} == expected
    with db.read_session() as session:
        assert verify(session).ok


def test_an_entry_written_by_a_logged_in_user_names_that_user(
    client: TestClient, db: Database
) -> None:
    with db.write_session() as session:
        user = auth.create_user(
            session,
            TEST_ACTOR,
            email="root@example.com",
            password=PASSWORD,
            bindings=[auth.Binding(Role.ADMIN)],
            password_cost="minimum",
        )
        user_id = user.id
    login = client.post(
        "/api/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    seq = last_seq(db)
    response = client.post(
        "/api/v1/projects",
        json={"key": "web", "name": "Web"},
        headers={"X-CSRF-Token": login.json()["csrf_token"], "X-Request-ID": "from-the-ui"},
    )
    assert response.status_code == 201, response.text
    [entry] = entries_after(db, seq)
    assert (entry.actor_type, entry.actor_id, entry.actor_name, entry.request_id) == (
        "user",
        str(user_id),
        "root@example.com",
        "from-the-ui",
    )


def test_an_entry_commits_or_rolls_back_with_its_change(db: Database) -> None:
    seq = last_seq(db)
    with pytest.raises(RuntimeError), db.write_session() as session:
        projects.create_project(session, TEST_ACTOR, key="doomed", name="Doomed")
        raise RuntimeError("the rest of the transaction failed")
    assert entries_after(db, seq) == []
    with db.read_session() as session:
        assert projects.find_project(session, "doomed") is None


def dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in the database: what "no change" means."""
    with db.read_session() as session:
        names = inspect(session.connection()).get_table_names()
        return {
            name: sorted(
                (tuple(row) for row in session.execute(text(f'SELECT * FROM "{name}"')).all()),
                key=repr,
            )
            for name in names
        }


@dataclass(frozen=True)
class Failure:
    name: str
    act: Callable[[World], httpx.Response]
    status: int
    slug: str
    prepare: Callable[[World], object] = lambda w: None


FAILURES = [
    Failure(
        "project key taken",
        lambda w: w.client.post("/api/v1/projects", json={"key": "shop", "name": "Again"}),
        409,
        "conflict",
    ),
    Failure(
        "project update with a stale ETag",
        lambda w: w.client.patch(
            "/api/v1/projects/shop", json={"name": "Late"}, headers={"If-Match": '"0"'}
        ),
        412,
        "precondition-failed",
    ),
    Failure(
        "project update without If-Match",
        lambda w: w.client.patch("/api/v1/projects/shop", json={"name": "Blind"}),
        428,
        "precondition-required",
    ),
    Failure(
        "environment key taken",
        lambda w: w.client.post(
            "/api/v1/projects/shop/environments", json={"key": "staging", "name": "Again"}
        ),
        409,
        "conflict",
    ),
    Failure(
        "environment update with a stale ETag",
        lambda w: w.client.patch(
            "/api/v1/projects/shop/environments/staging",
            json={"name": "Late"},
            headers={"If-Match": '"7"'},
        ),
        412,
        "precondition-failed",
    ),
    Failure(
        "user email taken",
        lambda w: w.client.post(
            "/api/v1/users", json={"email": "ADA@example.com", "password": PASSWORD}
        ),
        409,
        "conflict",
    ),
    Failure(
        # Fails after the user row was flushed: the rollback must take it back.
        "user with an SDK role",
        lambda w: w.client.post(
            "/api/v1/users",
            json={
                "email": "bob@example.com",
                "password": PASSWORD,
                "roles": [{"role": "sdk-server"}],
            },
        ),
        422,
        "validation-error",
    ),
    Failure(
        "user with two roles on one scope",
        lambda w: w.client.patch(
            f"/api/v1/users/{w.user_id}",
            json={"name": "Ada", "roles": [{"role": "viewer"}, {"role": "editor"}]},
        ),
        422,
        "validation-error",
    ),
    Failure(
        "key revoked twice",
        lambda w: w.client.post(f"/api/v1/keys/{w.key_id}/revoke"),
        409,
        "conflict",
        prepare=lambda w: w.client.post(f"/api/v1/keys/{w.key_id}/revoke").raise_for_status(),
    ),
    Failure(
        "login with a wrong password",
        lambda w: w.client.post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": "wrong password"}
        ),
        401,
        "unauthenticated",
    ),
]


@pytest.mark.parametrize("failure", FAILURES, ids=lambda f: f.name)
def test_a_failed_mutation_leaves_no_entry_and_no_change(
    world: World, db: Database, failure: Failure
) -> None:
    failure.prepare(world)
    before = dump(db)
    assert_problem(failure.act(world), failure.status, failure.slug)
    assert dump(db) == before
