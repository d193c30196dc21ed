"""What every response carries (request id, security headers) and what the logs say."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from interlock.server.auth import service as auth
from interlock.server.auth.credentials import new_api_key
from interlock.server.auth.roles import Role
from interlock.server.db.engine import Database
from interlock.server.settings import LogFormat
from tests.helpers import TEST_ACTOR
from tests.server.logcapture import captured_logs

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def test_a_sane_request_id_is_echoed(client: TestClient) -> None:
    for sent in ("abc-123", "trace.7f:span_2", "x" * 128):
        response = client.get("/healthz", headers={"X-Request-ID": sent})
        assert response.headers["X-Request-ID"] == sent


def test_a_request_id_is_generated_when_none_is_sent(client: TestClient) -> None:
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz").headers["X-Request-ID"]
    assert GENERATED_ID.match(first)
    assert GENERATED_ID.match(second)
    assert first != second


@pytest.mark.parametrize(
    "sent",
    ["a\nb", "forged\r\nSet-Cookie: session=x", "x" * 129, "<script>", "two words", ""],
    ids=["newline", "header injection", "too long", "markup", "space", "empty"],
)
def test_an_unsafe_request_id_is_replaced(sent: str, client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": sent})
    assert GENERATED_ID.match(response.headers["X-Request-ID"])


def _responses(client: TestClient) -> dict[str, Any]:
    too_large = b" " * (client.app.state.settings.max_body_bytes + 1)  # type: ignore[attr-defined]
    return {
        "ok": client.get("/healthz"),
        "unauthenticated": client.get("/api/v1/projects"),
        "unknown route": client.get("/nowhere"),
        "method not allowed": client.delete("/healthz"),
        "too large": client.post(
            "/api/v1/projects", content=too_large, headers={"Content-Type": "application/json"}
        ),
        "openapi": client.get("/openapi.json"),
        "metrics": client.get("/metrics"),
        "docs page": client.get("/docs"),
    }


def test_every_response_carries_a_request_id_and_the_security_headers(
    client: TestClient,
) -> None:
    for name, response in _responses(client).items():
        headers = response.headers
        assert GENERATED_ID.match(headers.get("X-Request-ID", "")), name
        assert headers["X-Content-Type-Options"] == "nosniff", name
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin", name
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], name


def test_pages_get_a_page_policy_and_data_gets_a_locked_down_one(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.headers["content-type"].startswith("text/html")
    page_policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in page_policy
    assert "script-src" in page_policy
    data = client.get("/api/v1/version")
    assert data.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_json_logs_are_one_object_per_line_with_the_request(client: TestClient) -> None:
    with captured_logs(LogFormat.JSON) as logs:
        client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    events = logs.events()
    [request] = [e for e in events if e["event"] == "request" and e["path"] == "/healthz"]
    assert request["request_id"] == "trace-42"
    assert request["method"] == "GET"
    assert request["status"] == 200
    assert request["level"] == "info"
    assert request["timestamp"]


def test_console_logs_are_readable_lines(client: TestClient) -> None:
    with captured_logs(LogFormat.CONSOLE) as logs:
        client.get("/healthz", headers={"X-Request-ID": "trace-43"})
    [line] = [line for line in logs.text().splitlines() if "trace-43" in line]
    assert "request" in line
    assert "path=/healthz" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


PASSWORD = "correct horse battery staple 91"


@pytest.fixture
def leaky_app(app: FastAPI, db: Database) -> FastAPI:
    """The app with a user to log in as, and a route that fails holding secrets."""
    with db.write_session() as session:
        auth.create_user(
            session,
            TEST_ACTOR,
            email="ops@example.com",
            password=PASSWORD,
            bindings=[auth.Binding(Role.ADMIN)],
            password_cost="minimum",
        )

    def fail_with_secrets() -> None:
        password = PASSWORD  # a rich traceback would print this local
        api_key = app.state.leaked_key
        raise RuntimeError(f"could not call upstream with key {api_key} ({len(password)})")

    app.add_api_route("/api/v1/test/leak", fail_with_secrets, methods=["POST"])
    return app


@pytest.mark.parametrize("fmt", list(LogFormat))
def test_no_api_key_or_password_reaches_the_logs(
    fmt: LogFormat, leaky_app: FastAPI, admin_key: str
) -> None:
    unknown_key = new_api_key(Role.EDITOR)
    leaky_app.state.leaked_key = admin_key
    with TestClient(leaky_app, raise_server_exceptions=False) as client, captured_logs(fmt) as logs:
        client.get("/api/v1/projects", headers={"Authorization": f"Bearer {admin_key}"})
        client.get("/api/v1/projects", headers={"Authorization": f"Bearer {unknown_key}"})
        client.get(f"/api/v1/projects?api_key={admin_key}")
        for password in (PASSWORD, PASSWORD + "!"):
            client.post(
                "/api/v1/auth/login", json={"email": "ops@example.com", "password": password}
            )
        failed = client.post("/api/v1/test/leak", headers={"Authorization": f"Bearer {admin_key}"})
    text = logs.text()
    assert failed.status_code == 500
    assert "could not call upstream" in text, "the failure itself is logged"
    for secret in (admin_key, unknown_key, PASSWORD):
        assert secret not in text


def test_head_is_answered_like_get_without_a_body(client: TestClient) -> None:
    got = client.get("/healthz")
    head = client.head("/healthz")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    assert head.headers["X-Request-ID"]
    assert client.head("/api/v1/projects/default").status_code == 401
