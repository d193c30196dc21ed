"""Small helpers shared by tests."""

from __future__ import annotations

from typing import Any

from interlock.server.audit.service import Actor
from interlock.server.problems import PROBLEM_JSON

TEST_ACTOR = Actor(type="system", id="tests", name="tests")


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem of this status and type; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == f"/problems/{slug}"
    assert body["title"] and body["detail"]
    return body
