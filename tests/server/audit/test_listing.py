"""GET /api/v1/audit: newest first, filters, cursor pages, and who may read what."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from interlock.server.audit.models import AuditEntry
from interlock.server.auth import service as auth
from interlock.server.auth.roles import Role
from interlock.server.db.engine import Database
from interlock.server.pagination import MAX_PAGE_SIZE
from interlock.server.projects import service as projects
from tests.helpers import TEST_ACTOR, assert_problem
from tests.server.audit.chain import entries


@dataclass(frozen=True)
class Log:
    """Entries by two instance admin keys over projects `shop` and `blog`."""

    client: TestClient
    db: Database
    ops_id: int
    ops: dict[str, str]  # headers sending the second admin key

    def all(self) -> list[AuditEntry]:
        return list(entries(self.db))


@pytest.fixture
def log(admin: TestClient, db: Database) -> Log:
    with db.write_session() as session:
        key, value = auth.create_key(session, TEST_ACTOR, name="ops", role=Role.ADMIN)
        ops_id = key.id
    ops = {"Authorization": f"Bearer {value}"}
    for project in ("shop", "blog"):
        created = admin.post("/api/v1/projects", json={"key": project, "name": project.title()})
        assert created.status_code == 201, created.text
        created = admin.post(
            f"/api/v1/projects/{project}/environments",
            json={"key": "qa", "name": "QA"},
            headers=ops,
        )
        assert created.status_code == 201, created.text
    etag = admin.get("/api/v1/projects/shop").headers["ETag"]
    updated = admin.patch(
        "/api/v1/projects/shop", json={"name": "The shop"}, headers=ops | {"If-Match": etag}
    )
    assert updated.status_code == 200, updated.text
    return Log(admin, db, ops_id, ops)


def listed(client: TestClient, **params: Any) -> list[int]:
    response = client.get("/api/v1/audit", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None, "expected one page"
    return [item["seq"] for item in body["items"]]


def newest_first(selected: list[AuditEntry]) -> list[int]:
    return sorted((e.seq for e in selected), reverse=True)


def test_entries_are_listed_newest_first_with_every_field(log: Log) -> None:
    everything = log.all()
    response = log.client.get("/api/v1/audit")
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["seq"] for item in items] == newest_first(everything)
    latest = everything[-1]
    assert items[0] == {
        "seq": latest.seq,
        "at": latest.at.isoformat().replace("+00:00", "Z"),
        "actor_type": "key",
        "actor_id": str(log.ops_id),
        "actor_name": "key:ops",
        "action": "project.update",
        "resource_type": "project",
        "resource_id": "shop",
        "project": "shop",
        "before": latest.before,
        "after": latest.after,
        "request_id": latest.request_id,
        "hash": latest.hash,
    }


@dataclass(frozen=True)
class Filter:
    name: str
    params: Callable[[Log, list[AuditEntry]], dict[str, str]]
    keeps: Callable[[Log, list[AuditEntry], AuditEntry], bool]


def middle(everything: list[AuditEntry]) -> AuditEntry:
    return everything[len(everything) // 2]


FILTERS = [
    Filter(
        "project", lambda log, es: {"project": "shop"}, lambda log, es, e: e.project_key == "shop"
    ),
    Filter(
        "action",
        lambda log, es: {"action": "environment.create"},
        lambda log, es, e: e.action == "environment.create",
    ),
    Filter(
        "resource type",
        lambda log, es: {"resource_type": "environment"},
        lambda log, es, e: e.resource_type == "environment",
    ),
    Filter(
        "resource id",
        lambda log, es: {"resource_id": "blog/qa"},
        lambda log, es, e: e.resource_id == "blog/qa",
    ),
    Filter(
        "actor id",
        lambda log, es: {"actor_id": str(log.ops_id)},
        lambda log, es, e: e.actor_id == str(log.ops_id),
    ),
    Filter(
        "since, inclusive",
        lambda log, es: {"since": middle(es).at.isoformat()},
        lambda log, es, e: e.at >= middle(es).at,
    ),
    Filter(
        "until, exclusive",
        lambda log, es: {"until": middle(es).at.isoformat()},
        lambda log, es, e: e.at < middle(es).at,
    ),
    Filter(
        "several at once",
        lambda log, es: {
            "project": "shop",
            "actor_id": str(log.ops_id),
            "since": es[0].at.isoformat(),
        },
        lambda log, es, e: e.project_key == "shop" and e.actor_id == str(log.ops_id),
    ),
]


@pytest.mark.parametrize("case", FILTERS, ids=lambda f: f.name)
def test_a_filter_lists_exactly_the_entries_it_describes(log: Log, case: Filter) -> None:
    everything = log.all()
    expected = newest_first([e for e in everything if case.keeps(log, everything, e)])
    assert 0 < len(expected) < len(everything), "the case must filter something"
    assert listed(log.client, **case.params(log, everything)) == expected


def walk(
    client: TestClient, between: Callable[[], None] = lambda: None, **params: Any
) -> list[int]:
    seqs: list[int] = []
    cursor = None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        response = client.get("/api/v1/audit", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= params["limit"]
        seqs += [item["seq"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seqs
        between()


def test_pages_follow_each_other_without_duplicates_or_gaps(log: Log) -> None:
    everything = log.all()
    assert walk(log.client, limit=3) == newest_first(everything)
    assert walk(log.client, limit=1, project="shop") == newest_first(
        [e for e in everything if e.project_key == "shop"]
    )


def test_entries_appended_while_paging_do_not_shift_the_pages(log: Log) -> None:
    everything = log.all()
    made = iter(range(100))

    def append() -> None:
        created = log.client.post(
            "/api/v1/projects", json={"key": f"new-{next(made)}", "name": "New"}
        )
        assert created.status_code == 201, created.text

    assert walk(log.client, append, limit=2) == newest_first(everything)
    assert len(log.all()) > len(everything)


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "status", "slug"),
    [
        ({"limit": MAX_PAGE_SIZE + 1}, 422, "validation-error"),
        ({"limit": 0}, 422, "validation-error"),
        ({"cursor": "not a cursor"}, 400, "bad-request"),
        ({"cursor": cursor_of({"after": "3"})}, 400, "bad-request"),
        ({"cursor": cursor_of({"after": -1})}, 400, "bad-request"),
        ({"cursor": cursor_of({"after": 10**30})}, 400, "bad-request"),
        ({"cursor": cursor_of([1])}, 400, "bad-request"),
        ({"since": "yesterday"}, 422, "validation-error"),
        # Without an offset the time is ambiguous: refused rather than guessed.
        ({"until": "2030-01-01T00:00:00"}, 422, "validation-error"),
        ({"action": "x" * 65}, 422, "validation-error"),
    ],
)
def test_bad_list_parameters_are_problems(
    admin: TestClient, params: dict[str, Any], status: int, slug: str
) -> None:
    assert_problem(admin.get("/api/v1/audit", params=params), status, slug)


def test_the_history_of_a_deleted_project_stays_listed(log: Log) -> None:
    before = listed(log.client, project="blog")
    deleted = log.client.delete("/api/v1/projects/blog")
    assert deleted.status_code == 204, deleted.text
    after = listed(log.client, project="blog")
    assert after[1:] == before
    assert len(after) == len(before) + 1


# ---------------------------------------------------------------- who may read


def key_for(db: Database, role: Role, project: str, environment: str | None = None) -> str:
    with db.write_session() as session:
        found = projects.get_project(session, project)
        env = projects.get_environment(session, found, environment) if environment else None
        _, value = auth.create_key(
            session, TEST_ACTOR, name=f"{role}", role=role, project=found, environment=env
        )
    return value


def as_key(client: TestClient, value: str, **params: Any) -> Any:
    return client.get("/api/v1/audit", params=params, headers={"Authorization": f"Bearer {value}"})


def test_a_project_admin_reads_only_their_projects_log(log: Log) -> None:
    value = key_for(log.db, Role.ADMIN, "shop")
    response = as_key(log.client, value, project="shop")
    assert response.status_code == 200, response.text
    shop = [e for e in log.all() if e.project_key == "shop"]
    assert [item["seq"] for item in response.json()["items"]] == newest_first(shop)
    assert_problem(as_key(log.client, value), 403, "forbidden")
    # Another project and no project at all look the same: existence does not leak.
    assert_problem(as_key(log.client, value, project="blog"), 404, "not-found")
    assert_problem(as_key(log.client, value, project="nowhere"), 404, "not-found")


@pytest.mark.parametrize(
    ("role", "environment"),
    [
        (Role.EDITOR, None),
        (Role.VIEWER, None),
        (Role.ADMIN, "staging"),  # an environment's admin is not the project's
        (Role.SDK_SERVER, "production"),
        (Role.SDK_CLIENT, "production"),
    ],
)
def test_keys_that_do_not_manage_the_project_may_not_read_its_log(
    log: Log, role: Role, environment: str | None
) -> None:
    value = key_for(log.db, role, "shop", environment)
    assert_problem(as_key(log.client, value, project="shop"), 403, "forbidden")
