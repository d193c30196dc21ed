"""The authorization matrix: every route of the app against every kind of caller.

The route table is read from the app itself, and each route's expected answer is computed
from the `Requirement` it declares and `roles.allowed`, never from a hand-written table: a
route added tomorrow is checked against every role, scope and foreign project without
anyone touching this file. A path parameter this file does not know (PATH_VALUES) gets a
placeholder of the right type: the route is still checked for 401, 403 and the foreign
project's 404, but an allowed caller may then get a 404 for the placeholder itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from interlock.server.audit.models import AuditEntry
from interlock.server.auth import credentials
from interlock.server.auth import service as auth
from interlock.server.auth.deps import CSRF_HEADER, SESSION_COOKIE, Requirement
from interlock.server.auth.models import User
from interlock.server.auth.roles import SDK_ROLES, Grant, Role, allowed
from interlock.server.auth.roles import can_see_project as sees
from interlock.server.db.engine import Database
from interlock.server.ops.api import PUBLIC_PATHS
from interlock.server.projects import service as projects
from interlock.server.settings import Settings
from tests.conftest import make_settings
from tests.helpers import TEST_ACTOR, assert_problem

ALPHA, BETA, STAGING = "alpha", "beta", "staging"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # Hundreds of requests from one address in a few seconds: rate limits are not under test.
    return make_settings(database_url, tmp_path, rate_limit_per_ip=None, rate_limit_per_key=None)


# ---------------------------------------------------------------- the route table


def requirements_of(dependant: Dependant) -> list[Requirement]:
    """Every Requirement among a route's dependencies, however deeply nested."""
    found = []
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, Requirement):
            found.append(dependency.call)
        found.extend(requirements_of(dependency))
    return found


@dataclass(frozen=True, slots=True)
class RouteEntry:
    path: str
    methods: frozenset[str]
    dependant: Dependant | None  # None: not an APIRoute (docs pages, mounts)


def route_table(app: FastAPI) -> list[RouteEntry]:
    """Every route as served, with the prefixes and dependencies of the routers that hold it."""
    # FastAPI >= 0.16x keeps included routers whole; older versions flatten them into app.routes.
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: list[Any] = list(iterate(app.routes)) if iterate else list(app.routes)
    table = []
    for route in routes:
        original = getattr(route, "original_route", route)
        is_api = isinstance(original, APIRoute)
        table.append(
            RouteEntry(
                path=route.path,
                methods=frozenset(getattr(route, "methods", None) or ()),
                dependant=route.dependant if is_api else None,
            )
        )
    return table


def unguarded_paths(app: FastAPI) -> set[str]:
    """Paths with a route that declares no Requirement (docs and static mounts included)."""
    return {
        route.path
        for route in route_table(app)
        if route.dependant is None or not requirements_of(route.dependant)
    }


def guarded_operations(app: FastAPI) -> Iterator[tuple[str, str, Requirement]]:
    for route in route_table(app):
        if route.dependant is not None and route.path not in PUBLIC_PATHS:
            found = requirements_of(route.dependant)
            # One Requirement per route keeps the expected answer unambiguous.
            assert len(found) == 1, f"{route.path} declares {found}: declare exactly one"
            for method in sorted(route.methods):
                yield method, route.path, found[0]


def test_the_public_paths_are_exactly_the_routes_that_require_nothing(app: FastAPI) -> None:
    unguarded = unguarded_paths(app)
    assert unguarded - PUBLIC_PATHS == set(), "these routes declare no Requirement"
    assert PUBLIC_PATHS - unguarded == set(), "these public paths require something (or are gone)"


def test_the_route_table_is_the_one_the_openapi_document_describes(app: FastAPI) -> None:
    # The matrix reads parameters and bodies from the document: it must list every route,
    # and the route table must see the routes of every included router.
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    served = {
        (method, route.path)
        for route in route_table(app)
        if route.dependant is not None
        for method in route.methods
    }
    assert served == documented
    assert len(list(guarded_operations(app))) >= 15


def test_the_public_routes_answer_the_same_with_or_without_a_key(client: TestClient) -> None:
    """A public route never asks who is calling: a key changes nothing in its answer."""
    app: FastAPI = client.app  # type: ignore[assignment]
    world = build_world(app.state.db)
    admin = {"Authorization": f"Bearer {world.keys[INSTANCE_ADMIN.label]}"}
    spec = app.openapi()
    checked = 0
    for route in route_table(app):
        if route.dependant is None or route.path not in PUBLIC_PATHS:
            continue
        for method in route.methods:
            request = prepare_request(spec, method, route.path, world)
            anonymous = client.request(method, request.url, json=request.body)
            with_key = client.request(method, request.url, json=request.body, headers=admin)
            assert anonymous.status_code < 500, (method, route.path, anonymous.text)
            assert anonymous.status_code == with_key.status_code, (method, route.path)
            checked += 1
    assert checked >= 5
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert client.get(path).status_code == 200, path


# ---------------------------------------------------------------- who calls


@dataclass(frozen=True, slots=True)
class Caller:
    """A kind of caller: with no credential, an unknown key, a key, or a user's session."""

    label: str
    via: str  # "nothing" | "unknown-key" | "key" | "session"
    role: Role | None = None
    project: str | None = None
    environment: str | None = None


INSTANCE_ADMIN = Caller("admin key, instance-wide", "key", Role.ADMIN)


def _key_callers() -> Iterator[Caller]:
    yield INSTANCE_ADMIN
    for role in Role:
        if role not in SDK_ROLES:  # SDK keys always belong to one environment
            yield Caller(f"{role} key on {ALPHA}", "key", role, ALPHA)
        yield Caller(f"{role} key on {ALPHA}/{STAGING}", "key", role, ALPHA, STAGING)
        # Another project's key: project-wide where the role allows, else one environment.
        environment = STAGING if role in SDK_ROLES else None
        yield Caller(f"{role} key on {BETA}", "key", role, BETA, environment)


CALLERS = (
    Caller("no credential", "nothing"),
    Caller("unknown key", "unknown-key"),
    *_key_callers(),
    Caller(f"viewer user on {ALPHA}, by session", "session", Role.VIEWER, ALPHA),
)


@dataclass
class World:
    """The resources every request names, and a credential for every caller."""

    db: Database
    secret_key: str
    project_ids: dict[str, int]
    environment_ids: dict[tuple[str, str], int]
    keys: dict[str, str]
    session_user_id: int
    target_user_id: int
    target_key_id: int
    fresh: Iterator[int] = field(default_factory=itertools.count)

    def grants(self, caller: Caller) -> tuple[Grant, ...] | None:
        if caller.role is None:
            return None
        project_id = self.project_ids[caller.project] if caller.project else None
        environment_id = (
            self.environment_ids[(caller.project, caller.environment)]
            if caller.project and caller.environment
            else None
        )
        return (Grant(caller.role, project_id, environment_id),)

    def headers(self, caller: Caller) -> dict[str, str]:
        if caller.via == "unknown-key":
            return {"Authorization": f"Bearer {credentials.new_api_key(Role.ADMIN)}"}
        if caller.via == "key":
            return {"Authorization": f"Bearer {self.keys[caller.label]}"}
        if caller.via == "session":
            # A session of its own for every request, so logging out ends only that one.
            with self.db.write_session() as session:
                user = auth.get_user(session, self.session_user_id)
                token = auth.open_login_session(session, user, hours=1)
            return {
                "Cookie": f"{SESSION_COOKIE}={token}",
                CSRF_HEADER: credentials.csrf_token(self.secret_key, token),
            }
        return {}


def build_world(db: Database, secret_key: str = "") -> World:
    """Projects alpha and beta (recreated if they exist), keys for every caller, two users."""
    with db.write_session() as session:
        for key in (ALPHA, BETA):
            existing = projects.find_project(session, key)
            if existing is not None:
                projects.delete_project(session, TEST_ACTOR, existing)
        created = {
            key: projects.create_project(session, TEST_ACTOR, key=key, name=key)
            for key in (ALPHA, BETA)
        }
        environment_ids = {
            (key, environment.key): environment.id
            for key, project in created.items()
            for environment in project.environments
        }
        keys = {}
        for caller in CALLERS:
            if caller.via != "key":
                continue
            assert caller.role is not None
            project = created[caller.project] if caller.project else None
            environment = (
                projects.get_environment(session, project, caller.environment)
                if project and caller.environment
                else None
            )
            _, keys[caller.label] = auth.create_key(
                session,
                TEST_ACTOR,
                name=caller.label,
                role=caller.role,
                project=project,
                environment=environment,
            )
        target_key, _ = auth.create_key(
            session, TEST_ACTOR, name="target", role=Role.VIEWER, project=created[ALPHA]
        )
        target_user = _user(session, "target@example.com", [])
        viewer = _user(session, "viewer@example.com", [auth.Binding(Role.VIEWER, created[ALPHA])])
        return World(
            db=db,
            secret_key=secret_key,
            project_ids={key: project.id for key, project in created.items()},
            environment_ids=environment_ids,
            keys=keys,
            session_user_id=viewer.id,
            target_user_id=target_user.id,
            target_key_id=target_key.id,
        )


def _user(session: Session, email: str, bindings: list[auth.Binding]) -> User:
    user = auth.find_user(session, email)
    if user is None:
        return auth.create_user(
            session,
            TEST_ACTOR,
            email=email,
            password="a long enough password",
            bindings=bindings,
            password_cost="minimum",
        )
    return auth.update_user(session, TEST_ACTOR, user, bindings=bindings, password_cost="minimum")


# ---------------------------------------------------------------- what each request sends

# Path parameters name real resources, so an allowed caller can never be turned away by a 404.
PATH_VALUES: dict[str, Callable[[World], str]] = {
    "project": lambda w: ALPHA,
    "environment": lambda w: STAGING,
    "user_id": lambda w: str(w.target_user_id),
    "key_id": lambda w: str(w.target_key_id),
    "slug": lambda w: "not-found",
}
# Every project or environment a request names, in its query or body, is alpha/staging:
# the callers' grants are then judged against the one project the request is about.
NAMED_VALUES = {"project": ALPHA, "environment": STAGING}
FIELD_VALUES: dict[str, Any] = {
    **NAMED_VALUES,
    "role": Role.VIEWER.value,
    "name": "Authorization test",
    "password": "a long enough password",
}


@dataclass(frozen=True, slots=True)
class Prepared:
    url: str
    body: Any
    headers: dict[str, str]
    placeholder: bool  # a path parameter names no real resource


def prepare_request(spec: dict[str, Any], method: str, path: str, world: World) -> Prepared:
    """A request naming existing resources, with a minimal valid body if the route takes one."""
    operation = spec["paths"][path][method.lower()]
    url = path
    query: dict[str, str] = {}
    headers: dict[str, str] = {}
    placeholder = False
    for parameter in operation.get("parameters", []):
        name, where = parameter["name"], parameter["in"]
        if where == "path":
            if name in PATH_VALUES:
                value = PATH_VALUES[name](world)
            else:
                value = str(minimal(spec, parameter.get("schema", {}), world) or 1)
                placeholder = True
            url = url.replace(f"{{{name}}}", value)
        elif where == "query" and name in NAMED_VALUES:
            query[name] = NAMED_VALUES[name]
        elif where == "header" and name.lower() == "if-match":
            headers["If-Match"] = "*"
        elif parameter.get("required"):
            pytest.fail(f"{method} {path}: teach this test a value for {where} parameter {name}")
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    body = None
    request_body = operation.get("requestBody")
    if request_body is not None:
        schema = request_body["content"]["application/json"]["schema"]
        body = minimal(spec, schema, world)
    return Prepared(url, body, headers, placeholder)


def minimal(spec: dict[str, Any], schema: dict[str, Any], world: World) -> Any:
    """The smallest value the schema accepts, using FIELD_VALUES for the fields it knows."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return minimal(spec, spec["components"]["schemas"][name], world)
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            options = [s for s in schema[combinator] if s.get("type") != "null"]
            return minimal(spec, options[0], world) if options else None
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        required = set(schema.get("required", []))
        value = {}
        for name, item in schema.get("properties", {}).items():
            if name == "key":
                value[name] = f"authz-{next(world.fresh)}"
            elif name == "email":
                value[name] = f"authz-{next(world.fresh)}@example.com"
            elif name in FIELD_VALUES:
                value[name] = FIELD_VALUES[name]
            elif name in required:
                value[name] = minimal(spec, item, world)
        return value
    if kind == "array":
        return [minimal(spec, schema["items"], world)] * schema.get("minItems", 0)
    if kind == "string":
        return "x" * max(schema.get("minLength", 1), 1)
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return None


# ---------------------------------------------------------------- what each caller must get


@dataclass(frozen=True, slots=True)
class Expected:
    outcome: str  # "401" | "403" | "404" | "pass" | "refused" | "past-the-gate"
    why: str

    @property
    def changes_nothing(self) -> bool:
        return self.outcome in ("401", "403", "404", "refused")


def expect(
    requirement: Requirement, grants: tuple[Grant, ...] | None, world: World, method: str
) -> Expected:
    """What the Requirement promises this caller, computed with roles.allowed."""
    if grants is None:
        return Expected("401", "no valid credential")
    action, scope = requirement.action, requirement.scope
    alpha = world.project_ids[ALPHA]
    if scope == "self":
        return Expected("pass", "any valid credential may act on itself")
    if scope == "instance":
        if allowed(grants, action):
            return Expected("pass", f"may {action} on the instance")
        return Expected("403", f"may not {action} on the instance")
    if scope == "any":
        # Each grant is judged in its own scope: an environment's admin manages nothing.
        if not any(allowed((g,), action, g.project_id, g.environment_id) for g in grants):
            return Expected("403", f"holds {action} nowhere")
        if allowed(grants, action, alpha):
            # Every project the request names is alpha: the route's own narrowing must let
            # through a caller who holds the action there.
            return Expected("pass", f"may {action} on {ALPHA}, the project the request names")
        # Held only on another project or one environment: the Requirement lets it in, and the
        # route narrows by itself. A read may succeed with less in it (a list of what the caller
        # may see); a change to alpha must be refused, whatever the route calls it (403, or a
        # 404 / 422 that does not reveal alpha).
        if method in SAFE_METHODS:
            return Expected("past-the-gate", f"holds {action} elsewhere; reads are narrowed")
        return Expected("refused", f"holds {action} only elsewhere, not on {ALPHA}")
    if not sees(grants, alpha):
        return Expected("404", f"holds no grant on {ALPHA}, so it does not exist for it")
    environment = world.environment_ids[(ALPHA, STAGING)] if scope == "environment" else None
    if allowed(grants, action, alpha, environment):
        return Expected("pass", f"may {action} on {ALPHA} ({scope})")
    return Expected("403", f"sees {ALPHA} but may not {action} there ({scope})")


def verdict(expected: Expected, response: Any, placeholder: bool = False) -> bool:
    """Whether the response is what the caller was promised."""
    status: int = response.status_code
    if expected.outcome in ("401", "403", "404"):
        slug = {"401": "unauthenticated", "403": "forbidden", "404": "not-found"}[expected.outcome]
        try:
            assert_problem(response, int(expected.outcome), slug)
        except AssertionError:
            return False
        return True
    if expected.outcome == "pass":
        if placeholder and status == 404:
            return True
        return status not in (401, 403, 404) and status < 500
    if expected.outcome == "refused":
        return 400 <= status < 500 and status != 401
    return status != 401 and status < 500


def audit_length(db: Database) -> int:
    with db.read_session() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def test_every_route_answers_every_caller_as_its_requirement_says(
    client: TestClient, db: Database
) -> None:
    app: FastAPI = client.app  # type: ignore[assignment]
    world = build_world(db, app.state.secret_key)
    spec = app.openapi()
    outcomes: dict[str, int] = {}
    wrong = []
    for method, path, requirement in guarded_operations(app):
        refusals_with_bad_body: set[str] = set()
        for caller in CALLERS:
            expected = expect(requirement, world.grants(caller), world, method)
            request = prepare_request(spec, method, path, world)
            headers = {**request.headers, **world.headers(caller)}
            before = audit_length(db) if expected.changes_nothing else 0
            client.cookies.clear()
            response = client.request(method, request.url, json=request.body, headers=headers)
            case = (
                f"{method} {path} by {caller.label}: expected {expected.outcome} ({expected.why})"
            )
            if not verdict(expected, response, request.placeholder):
                wrong.append(f"{case}, got {response.status_code} {response.text[:200]}")
            elif expected.changes_nothing and audit_length(db) != before:
                wrong.append(f"{case}: refused, yet it wrote to the audit log")
            if (
                expected.outcome in ("401", "403", "404")
                and request.body is not None
                and expected.outcome not in refusals_with_bad_body
            ):
                # Who may call is settled before the body is validated: a refused caller
                # learns nothing from validation errors. Once per route and kind of refusal.
                refusals_with_bad_body.add(expected.outcome)
                bad = client.request(method, request.url, json=[], headers=headers)
                if not verdict(expected, bad):
                    wrong.append(f"{case}, with an invalid body got {bad.status_code} {bad.text}")
            outcomes[expected.outcome] = outcomes.get(expected.outcome, 0) + 1
            if method == "DELETE" and response.is_success:
                # It deleted alpha or its staging environment, which every later case names.
                world = build_world(db, app.state.secret_key)
    assert not wrong, f"{len(wrong)} cases answered wrongly:\n" + "\n".join(wrong)
    # The matrix is not vacuous: each kind of answer was expected somewhere.
    assert {"401", "403", "404", "pass", "refused"} <= outcomes.keys(), outcomes
