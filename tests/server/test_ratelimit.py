"""Rate limits per key, per client address and on login; in memory, or shared through Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from interlock.server import ratelimit
from interlock.server.app import create_app
from interlock.server.auth import service as auth
from interlock.server.auth.roles import Role
from interlock.server.db.engine import Database
from tests.conftest import make_settings
from tests.helpers import TEST_ACTOR, assert_problem
from tests.server.logcapture import captured_logs

REDIS_URL = "redis://127.0.0.1:6379/0"
# Nothing listens there: connecting is refused at once.
UNREACHABLE_REDIS_URL = "redis://127.0.0.1:1/0"

ClientFactory = Callable[..., TestClient]


@pytest.fixture
def build(database_url: str, tmp_path: Path, db: Database) -> Iterator[ClientFactory]:
    """Clients of apps on the test database, each with the settings given (limits off unless
    named), all closed at the end."""
    with ExitStack() as stack:

        def make(**overrides: Any) -> TestClient:
            limits: dict[str, Any] = {
                "rate_limit_per_key": None,
                "rate_limit_per_ip": None,
                "rate_limit_login": None,
                **overrides,
            }
            app = create_app(make_settings(database_url, tmp_path, **limits), db)
            return stack.enter_context(TestClient(app, raise_server_exceptions=False))

        yield make


@pytest.fixture
def redis_prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A key prefix of this test's own in the shared Redis; its keys are deleted afterwards."""
    prefix = f"interlock-test-{uuid.uuid4().hex}"
    monkeypatch.setattr(ratelimit, "DEFAULT_KEY_PREFIX", prefix)
    connection = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        connection.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL} ({exc})")
    yield prefix
    for key in connection.scan_iter(match=f"{prefix}*"):
        connection.delete(key)
    connection.close()


def _key(db: Database, name: str) -> dict[str, str]:
    with db.write_session() as session:
        _, value = auth.create_key(session, TEST_ACTOR, name=name, role=Role.ADMIN)
    return {"Authorization": f"Bearer {value}"}


def _assert_limited(response: Any, limit: int) -> None:
    assert_problem(response, 429, "rate-limited")
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["RateLimit-Limit"] == str(limit)
    assert response.headers["RateLimit-Remaining"] == "0"
    assert int(response.headers["RateLimit-Reset"]) >= 0
    assert response.headers["X-Request-ID"]


def test_each_key_has_its_own_limit(build: ClientFactory, db: Database) -> None:
    client = build(rate_limit_per_key="3/minute")
    first, second = _key(db, "first"), _key(db, "second")
    remaining = [
        client.get("/api/v1/projects/default", headers=first).headers["RateLimit-Remaining"]
        for _ in range(3)
    ]
    assert remaining == ["2", "1", "0"]
    _assert_limited(client.get("/api/v1/projects/default", headers=first), limit=3)
    assert client.get("/api/v1/projects/default", headers=second).status_code == 200


def test_each_client_address_has_its_own_limit_whatever_key_it_sends(
    build: ClientFactory, db: Database
) -> None:
    client = build(rate_limit_per_ip="3/minute")
    assert client.get("/api/v1/projects/default", headers=_key(db, "a")).status_code == 200
    assert client.get("/api/v1/projects/default", headers=_key(db, "b")).status_code == 200
    # Guessing keys counts too: a refused key is a request from this address.
    assert client.get("/api/v1/projects/default").status_code == 401
    _assert_limited(client.get("/api/v1/projects/default", headers=_key(db, "c")), limit=3)


def test_login_attempts_are_limited_per_client_address(build: ClientFactory) -> None:
    client = build(rate_limit_login="2/minute")
    attempt = {"email": "someone@example.com", "password": "wrong"}
    for _ in range(2):
        assert_problem(client.post("/api/v1/auth/login", json=attempt), 401, "unauthenticated")
    _assert_limited(client.post("/api/v1/auth/login", json=attempt), limit=2)


def test_a_limited_write_changes_nothing(build: ClientFactory, db: Database) -> None:
    client = build(rate_limit_per_key="1/minute")
    headers = _key(db, "writer")
    assert client.get("/api/v1/projects/default", headers=headers).status_code == 200
    refused = client.post("/api/v1/projects", json={"key": "late", "name": "Late"}, headers=headers)
    _assert_limited(refused, limit=1)
    other = _key(db, "reader")
    assert_problem(client.get("/api/v1/projects/late", headers=other), 404, "not-found")


def test_unauthenticated_operations_endpoints_are_not_limited(build: ClientFactory) -> None:
    client = build(rate_limit_per_ip="1/minute")
    assert all(client.get("/healthz").status_code == 200 for _ in range(3))


def test_two_apps_sharing_one_redis_share_the_count(
    build: ClientFactory, db: Database, redis_prefix: str
) -> None:
    one = build(redis_url=REDIS_URL, rate_limit_per_key="3/minute")
    two = build(redis_url=REDIS_URL, rate_limit_per_key="3/minute")
    headers = _key(db, "shared")
    assert one.get("/api/v1/projects/default", headers=headers).status_code == 200
    assert one.get("/api/v1/projects/default", headers=headers).status_code == 200
    third = two.get("/api/v1/projects/default", headers=headers)
    assert third.headers["RateLimit-Remaining"] == "0"
    _assert_limited(two.get("/api/v1/projects/default", headers=headers), limit=3)
    stored = redis.Redis.from_url(REDIS_URL).keys(f"{redis_prefix}*")
    assert stored, "the count lives in Redis under the instance's prefix"


def test_an_unreachable_redis_fails_open_with_a_warning(build: ClientFactory, db: Database) -> None:
    client = build(redis_url=UNREACHABLE_REDIS_URL, rate_limit_per_key="1/minute")
    headers = _key(db, "reader")
    with captured_logs() as logs:
        statuses = [
            client.get("/api/v1/projects/default", headers=headers).status_code for _ in range(3)
        ]
    assert statuses == [200, 200, 200]
    warnings = [e for e in logs.events() if e["level"] == "warning"]
    # Once, not once per request: the store is left alone for a while after a failure.
    assert [w["event"] for w in warnings] == [
        "rate limit store unreachable; allowing requests without limits"
    ]
