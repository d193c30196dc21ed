"""Job tests run the real thing: the app's embedded runner in-process, or worker processes."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from interlock.server.settings import Settings
from tests.conftest import make_settings

TERMINAL = frozenset({"succeeded", "failed", "revoked"})
SAMPLE_JOBS = "tests.server.jobs.sample_jobs"
# Small enough that a dead worker is noticed within a couple of seconds.
JOB_TIMINGS: dict[str, Any] = {
    "jobs_poll_seconds": 0.05,
    "jobs_heartbeat_seconds": 0.2,
    "jobs_worker_timeout_seconds": 1.5,
    # Tests start periodic jobs themselves: a runner would start them when the wall clock
    # says so, and they would show up in the middle of other tests' job lists.
    "jobs_periodic": False,
}


def unique_namespace() -> str:
    """Queue names no other test (or parallel run) uses, in Redis or the queue tables."""
    return f"t{uuid.uuid4().hex[:16]}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url,
        tmp_path,
        jobs_runner=True,
        jobs_concurrency=1,
        jobs_namespace=unique_namespace(),
        jobs_imports=SAMPLE_JOBS,
        **JOB_TIMINGS,
    )


def wait_for_job(
    client: TestClient, job_id: int, statuses: frozenset[str] = TERMINAL, timeout: float = 20
) -> dict[str, Any]:
    """Poll the API until the job reaches one of `statuses`; fail with its state if not."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").json()
        if body["status"] in statuses:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never reached {sorted(statuses)}: {body}")
        time.sleep(0.02)


def wait_for_file(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.01)


def enqueue(client: TestClient, name: str, **args: Any) -> dict[str, Any]:
    response = client.post("/api/v1/jobs", json={"name": name, "args": args})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
