"""Multi-node: the server only enqueues; `interlock worker` processes run the jobs, on Redis
and on PostgreSQL (the main database is PostgreSQL in both)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from interlock.server.app import create_app
from interlock.server.auth import service as auth
from interlock.server.auth.roles import Role
from interlock.server.bootstrap import ensure_initial_data
from interlock.server.db.engine import Database
from interlock.server.settings import Settings
from tests.conftest import make_settings, truncate_all
from tests.helpers import TEST_ACTOR
from tests.server.jobs.conftest import (
    JOB_TIMINGS,
    SAMPLE_JOBS,
    enqueue,
    unique_namespace,
    wait_for_file,
    wait_for_job,
)

REDIS_URL = os.environ.get("INTERLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REPO = Path(__file__).resolve().parents[3]
INTERLOCK = Path(sys.executable).parent / "interlock"

pytestmark = pytest.mark.slow
# Starting a worker process imports the whole server: seconds on a busy machine.
PATIENCE = 90.0


@pytest.fixture(params=["redis", "postgresql"])
def node_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url: str = request.getfixturevalue("postgres_schema_url")
    truncate_all(url)
    redis_url = None
    if request.param == "redis":
        try:
            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            pytest.skip(f"Redis leg skipped: {REDIS_URL} is not reachable ({exc})")
        redis_url = REDIS_URL
    return make_settings(
        url,
        tmp_path,
        redis_url=redis_url,
        jobs_runner=False,
        jobs_namespace=unique_namespace(),
        jobs_imports=SAMPLE_JOBS,
        **JOB_TIMINGS,
    )


@pytest.fixture
def server(node_settings: Settings) -> Iterator[TestClient]:
    """The API of a server that runs no jobs itself."""
    db = Database(node_settings.effective_database_url)
    ensure_initial_data(node_settings, db)
    with db.write_session() as session:
        _, key = auth.create_key(session, TEST_ACTOR, name="admin", role=Role.ADMIN)
    with TestClient(create_app(node_settings, db)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client
    db.dispose()
    if node_settings.redis_url:
        connection = redis.Redis.from_url(node_settings.redis_url)
        for key in connection.scan_iter(f"huey.*.{node_settings.jobs_namespace}_*"):
            connection.delete(key)


class Workers:
    """`interlock worker` processes with the server's settings; all ended after the test."""

    def __init__(self, settings: Settings, directory: Path) -> None:
        self.settings = settings
        self.directory = directory
        self.started: list[subprocess.Popen[bytes]] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
        values: dict[str, Any] = {
            "database_url": self.settings.database_url,
            "redis_url": self.settings.redis_url or "",
            "secret_key": "test-secret-key-not-for-production",
            "data_dir": self.directory,
            "jobs_namespace": self.settings.jobs_namespace,
            "jobs_imports": SAMPLE_JOBS,
            "load_demo_data": "false",
            "password_hash_cost": "minimum",
            **JOB_TIMINGS,
        }
        env.update({f"INTERLOCK_{k.upper()}": str(v) for k, v in values.items()})
        env["PYTHONPATH"] = str(REPO)
        return env

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.directory / f"worker-{len(self.started)}.log").open("wb")
        process = subprocess.Popen(
            [str(INTERLOCK), "worker", *args],
            env=self.env(),
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append(process)
        return process

    def log(self, process: subprocess.Popen[bytes]) -> str:
        return (self.directory / f"worker-{self.started.index(process)}.log").read_text()

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


@pytest.fixture
def workers(node_settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(node_settings, tmp_path)
    yield started
    started.stop_all()


def worker_rows(server: TestClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = server.get("/api/v1/jobs/workers").json()["items"]
    return items


def test_a_burst_worker_runs_what_the_api_enqueued_then_exits(
    server: TestClient, workers: Workers
) -> None:
    jobs = [enqueue(server, "interlock.echo", message=str(n)) for n in range(3)]
    assert {server.get(f"/api/v1/jobs/{j['id']}").json()["status"] for j in jobs} == {"enqueued"}

    process = workers.start("--burst", "--concurrency", "2")
    assert process.wait(timeout=PATIENCE) == 0, workers.log(process)

    done = [server.get(f"/api/v1/jobs/{j['id']}").json() for j in jobs]
    assert [(d["status"], d["result"]["message"]) for d in done] == [
        ("succeeded", "0"),
        ("succeeded", "1"),
        ("succeeded", "2"),
    ]
    (row,) = worker_rows(server)
    assert row["status"] == "stopped"
    assert row["concurrency"] == 2 and row["embedded"] is False
    assert {d["worker_id"] for d in done} == {row["id"]}


def test_sigterm_lets_the_running_job_finish_before_the_worker_exits(
    server: TestClient, workers: Workers, tmp_path: Path
) -> None:
    gate, started = tmp_path / "open", tmp_path / "started"
    process = workers.start("--concurrency", "1")
    job = enqueue(server, "test.gate", path=str(gate), started=str(started), timeout=PATIENCE)
    wait_for_file(started, PATIENCE)

    process.send_signal(signal.SIGTERM)
    gate.touch()

    assert process.wait(timeout=PATIENCE) == 0, workers.log(process)
    finished = server.get(f"/api/v1/jobs/{job['id']}").json()
    assert (finished["status"], finished["result"], finished["attempts"]) == (
        "succeeded",
        "opened",
        1,
    )
    assert [w["status"] for w in worker_rows(server)] == ["stopped"]


def test_a_killed_worker_is_shown_dead_and_only_its_idempotent_job_runs_again(
    server: TestClient, workers: Workers, tmp_path: Path
) -> None:
    gate = tmp_path / "open"
    doomed = workers.start("--concurrency", "2")
    again = enqueue(
        server, "test.gate", path=str(gate), started=str(tmp_path / "a"), timeout=PATIENCE
    )
    once = enqueue(
        server, "test.gate_once", path=str(gate), started=str(tmp_path / "b"), timeout=PATIENCE
    )
    wait_for_file(tmp_path / "a", PATIENCE)
    wait_for_file(tmp_path / "b", PATIENCE)

    doomed.kill()
    doomed.wait(timeout=10)
    gate.touch()
    workers.start("--concurrency", "1")

    rerun = wait_for_job(server, again["id"], timeout=PATIENCE)
    assert (rerun["status"], rerun["attempts"]) == ("succeeded", 2)
    lost = [s for s in rerun["history"] if s["status"] == "retrying"]
    assert len(lost) == 1 and "was lost" in lost[0]["detail"]
    failed = wait_for_job(server, once["id"], timeout=PATIENCE)
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    assert "not idempotent" in failed["history"][-1]["detail"]
    rows = {w["pid"]: w for w in worker_rows(server)}
    assert rows[doomed.pid]["status"] == "dead"
    (survivor,) = [w for pid, w in rows.items() if pid != doomed.pid]
    assert survivor["status"] == "alive"
    assert rerun["worker_id"] == survivor["id"]
