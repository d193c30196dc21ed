"""The embedded runner's life with the app: no signal handlers, a bounded stop, and a job left
running at shutdown is run again by the next start."""

from __future__ import annotations

import signal
from pathlib import Path

from fastapi.testclient import TestClient

from interlock.server.app import create_app
from interlock.server.auth import service as auth
from interlock.server.auth.roles import Role
from interlock.server.db.engine import Database
from interlock.server.jobs import service
from interlock.server.jobs.runner import Runner
from interlock.server.jobs.system import JobSystem
from interlock.server.settings import Settings
from tests.helpers import TEST_ACTOR
from tests.server.jobs.conftest import enqueue, wait_for_file, wait_for_job

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def test_a_job_still_running_at_shutdown_is_run_again_by_the_next_start(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"shutdown_grace_seconds": 0.1})
    with db.write_session() as session:
        _, key = auth.create_key(session, TEST_ACTOR, name="admin", role=Role.ADMIN)
    handlers = [signal.getsignal(s) for s in SIGNALS]
    gate, started = tmp_path / "open", tmp_path / "started"

    with TestClient(create_app(settings, db)) as first:
        first.headers["Authorization"] = f"Bearer {key}"
        job = enqueue(first, "test.gate", path=str(gate), started=str(started))
        wait_for_file(started)
        # The runner left the process's signal handling alone (uvicorn's, in a real server).
        assert [signal.getsignal(s) for s in SIGNALS] == handlers
    # Shut down: the stop waited its 0.1 s and gave up on the gated job.
    with TestClient(create_app(settings, db)) as second:
        second.headers["Authorization"] = f"Bearer {key}"
        left = second.get(f"/api/v1/jobs/{job['id']}").json()
        stopped = second.get("/api/v1/jobs/workers").json()["items"]
        gate.touch()
        done = wait_for_job(second, job["id"])

    assert left["status"] in {"running", "retrying"}
    assert "stopped" in {w["status"] for w in stopped}
    assert (done["status"], done["attempts"]) == ("succeeded", 2)
    assert any("was lost" in (step["detail"] or "") for step in done["history"])


def test_a_burst_runner_on_one_queue_drains_it_and_leaves_the_others(
    settings: Settings, db: Database
) -> None:
    system = JobSystem(settings, db)
    side = system.enqueue(TEST_ACTOR, "test.elsewhere", {})
    default = system.enqueue(TEST_ACTOR, "interlock.echo", {})
    runner = Runner(system, concurrency=2, queues=["side"], burst=True)

    runner.start()
    assert runner.wait(timeout=30)
    runner.stop()

    with db.read_session() as session:
        ran = service.get_job(session, side.id)
        untouched = service.get_job(session, default.id)
    assert (ran.status, ran.result, ran.queue) == ("succeeded", "side", "side")
    assert untouched.status == "enqueued"
    assert system.queues.depth() == {"default": (1, 0), "side": (0, 0)}
    system.close()
