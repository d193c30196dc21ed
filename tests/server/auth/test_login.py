"""UI login: argon2 passwords, session and CSRF cookies, lockout, rate limit, logout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from interlock.server.app import create_app
from interlock.server.auth.deps import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from interlock.server.auth.models import User
from interlock.server.auth.roles import Role
from interlock.server.db.engine import Database
from tests.conftest import make_settings
from tests.helpers import assert_problem
from tests.server.auth.support import PASSWORD, make_user, raw_rows

EMAIL = "ada@example.com"


def login(client: TestClient, email: str = EMAIL, password: str = PASSWORD) -> Any:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def set_cookies(response: Any) -> dict[str, str]:
    """Each Set-Cookie header by cookie name, attributes included."""
    headers: list[str] = response.headers.get_list("set-cookie")
    return {header.split("=", 1)[0]: header for header in headers}


@pytest.fixture
def user(db: Database) -> int:
    """An instance admin who logs in with a password."""
    return make_user(db, EMAIL, Role.ADMIN)


@pytest.fixture
def make_client(db: Database, database_url: str, tmp_path: Path) -> Iterator[Any]:
    """Build a client on the test database with some settings overridden."""
    opened: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        settings = make_settings(database_url, tmp_path, **overrides)
        client = TestClient(create_app(settings, db), raise_server_exceptions=False)
        opened.append(client.__enter__())
        return client

    yield build
    for client in opened:
        client.__exit__(None, None, None)


def test_logging_in_sets_an_httponly_session_cookie_and_a_csrf_cookie(
    client: TestClient, user: int
) -> None:
    response = login(client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["email"] == EMAIL and body["user"]["id"] == user
    cookies = set_cookies(response)
    session = cookies[SESSION_COOKIE].lower()
    assert "httponly" in session and "samesite=lax" in session and "path=/" in session
    csrf = cookies[CSRF_COOKIE].lower()
    assert "samesite=strict" in csrf and "httponly" not in csrf
    assert client.cookies[CSRF_COOKIE] == body["csrf_token"]

    me = client.get("/api/v1/auth/me")
    assert me.status_code == 200, me.text
    assert (me.json()["kind"], me.json()["name"]) == ("user", EMAIL)


def test_the_email_is_matched_whatever_its_case(client: TestClient, user: int) -> None:
    assert login(client, email="  ADA@Example.com ").status_code == 200


def test_the_session_token_is_stored_only_as_a_digest(
    client: TestClient, db: Database, user: int
) -> None:
    assert login(client).status_code == 200
    token = client.cookies[SESSION_COOKIE]
    rows = raw_rows(db, "login_sessions")
    assert len(rows) == 1
    assert not any(token in str(cell) for cell in rows[0])


def test_a_wrong_password_and_an_unknown_email_look_the_same(client: TestClient, user: int) -> None:
    wrong = assert_problem(login(client, password="not the password"), 401, "unauthenticated")
    unknown = assert_problem(login(client, email="nobody@example.com"), 401, "unauthenticated")
    assert wrong == unknown
    assert SESSION_COOKIE not in client.cookies


def test_a_deactivated_user_cannot_log_in(client: TestClient, db: Database) -> None:
    user_id = make_user(db, EMAIL)
    with db.write_session() as session:
        session.execute(update(User).where(User.id == user_id).values(active=False))
    assert_problem(login(client), 401, "unauthenticated")


def test_an_unsafe_request_without_the_csrf_token_is_refused(client: TestClient, user: int) -> None:
    token = login(client).json()["csrf_token"]
    new_key = {"name": "from the ui", "role": "admin"}

    assert_problem(client.post("/api/v1/keys", json=new_key), 403, "csrf-failed")
    response = client.post("/api/v1/keys", json=new_key, headers={CSRF_HEADER: "0" * 64})
    assert_problem(response, 403, "csrf-failed")
    assert client.get("/api/v1/keys").json()["items"] == []

    response = client.post("/api/v1/keys", json=new_key, headers={CSRF_HEADER: token})
    assert response.status_code == 201, response.text


def test_safe_requests_need_no_csrf_token(client: TestClient, user: int) -> None:
    assert login(client).status_code == 200
    assert client.get("/api/v1/keys").status_code == 200
    assert client.get("/api/v1/projects/default").status_code == 200


def test_the_csrf_token_of_one_session_does_not_fit_another(client: TestClient, user: int) -> None:
    other = TestClient(client.app)
    stolen = login(other).json()["csrf_token"]
    login(client)
    response = client.post(
        "/api/v1/keys", json={"name": "x", "role": "admin"}, headers={CSRF_HEADER: stolen}
    )
    assert_problem(response, 403, "csrf-failed")


def test_logging_out_ends_the_session(client: TestClient, db: Database, user: int) -> None:
    token = login(client).json()["csrf_token"]
    cookie = client.cookies[SESSION_COOKIE]
    response = client.post("/api/v1/auth/logout", headers={CSRF_HEADER: token})
    assert response.status_code == 204, response.text
    assert raw_rows(db, "login_sessions") == []

    # Even a client that kept the cookie is refused.
    keeper = TestClient(client.app, cookies={SESSION_COOKIE: cookie})
    assert_problem(keeper.get("/api/v1/auth/me"), 401, "unauthenticated")
    assert_problem(client.get("/api/v1/auth/me"), 401, "unauthenticated")


def test_logging_out_needs_the_csrf_token(client: TestClient, user: int) -> None:
    login(client)
    assert_problem(client.post("/api/v1/auth/logout"), 403, "csrf-failed")
    assert client.get("/api/v1/auth/me").status_code == 200


def test_an_unknown_session_cookie_is_401(client: TestClient) -> None:
    client.cookies.set(SESSION_COOKIE, "made-up")
    assert_problem(client.get("/api/v1/auth/me"), 401, "unauthenticated")


def test_an_account_is_locked_after_too_many_failed_logins(
    make_client: Any, user: int, db: Database
) -> None:
    client = make_client(login_lockout="3/15 minutes", rate_limit_login=None)
    make_user(db, "bob@example.com")
    for _ in range(3):
        assert_problem(login(client, password="wrong password"), 401, "unauthenticated")

    locked = login(client)
    assert_problem(locked, 429, "rate-limited")
    assert int(locked.headers["Retry-After"]) >= 1
    assert SESSION_COOKIE not in client.cookies
    # Other accounts are not locked with it.
    assert login(client, email="bob@example.com").status_code == 200


def test_a_successful_login_clears_the_failed_count(make_client: Any, user: int) -> None:
    client = make_client(login_lockout="3/15 minutes", rate_limit_login=None)
    for _ in range(2):
        assert login(client, password="wrong password").status_code == 401
    assert login(client).status_code == 200
    for _ in range(2):
        assert login(client, password="wrong password").status_code == 401
    assert login(client).status_code == 200


def test_logins_from_one_address_are_rate_limited(make_client: Any, user: int) -> None:
    client = make_client(rate_limit_login="2/minute", login_lockout=None)
    assert login(client).status_code == 200
    assert login(client, password="wrong password").status_code == 401

    refused = login(client)
    assert_problem(refused, 429, "rate-limited")
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Limit"] == "2"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert int(refused.headers["RateLimit-Reset"]) >= 0


def test_a_malformed_login_is_422(client: TestClient) -> None:
    bodies: list[dict[str, Any]] = [
        {},
        {"email": EMAIL},
        {"email": "", "password": "x"},
        {"email": EMAIL, "password": 3},
        {"email": "nul\x00@example.com", "password": PASSWORD},
    ]
    for body in bodies:
        response = client.post("/api/v1/auth/login", json=body)
        assert_problem(response, 422, "validation-error")
