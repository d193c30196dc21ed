"""The whole job path through /api/v1/jobs, with the app's embedded runner doing the work."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.helpers import assert_problem
from tests.server.jobs.conftest import enqueue, wait_for_file, wait_for_job


def statuses(job: dict[str, object]) -> list[str]:
    history = job["history"]
    assert isinstance(history, list)
    return [step["status"] for step in history]


def test_a_job_enqueued_through_the_api_runs_and_its_life_is_shown(admin: TestClient) -> None:
    created = enqueue(admin, "interlock.echo", message="hello")
    assert created["status"] == "enqueued"
    assert created["attempts"] == 0

    done = wait_for_job(admin, created["id"])

    assert done["status"] == "succeeded"
    assert done["result"] == {"message": "hello", "attempt": 1}
    assert done["attempts"] == 1
    assert statuses(done) == ["enqueued", "running", "succeeded"]
    assert done["started_at"] and done["finished_at"] and done["duration_seconds"] is not None
    listed = admin.get("/api/v1/jobs").json()
    assert listed["next_cursor"] is None
    assert [(j["id"], j["name"], j["status"]) for j in listed["items"]] == [
        (created["id"], "interlock.echo", "succeeded")
    ]
    assert {"id", "name", "status", "attempts", "enqueued_at"} <= set(listed["items"][0])
    audit = admin.get("/api/v1/audit", params={"resource_type": "job"}).json()["items"]
    assert [(e["action"], e["resource_id"]) for e in audit] == [("job.enqueue", str(created["id"]))]


def test_a_failing_job_is_retried_with_backoff_until_it_succeeds(admin: TestClient) -> None:
    created = enqueue(admin, "test.flaky", fail_attempts=2)

    done = wait_for_job(admin, created["id"])

    assert done["status"] == "succeeded"
    assert done["attempts"] == 3
    assert done["result"] == {"attempt": 3}
    assert statuses(done) == [
        "enqueued",
        "running",
        "retrying",
        "running",
        "retrying",
        "running",
        "succeeded",
    ]
    retrying = [s for s in done["history"] if s["status"] == "retrying"]
    assert "attempt 1 fails" in retrying[0]["detail"]
    # The retry waited (was scheduled for later) rather than running at once.
    assert done["run_at"] is not None


def test_a_job_that_keeps_failing_ends_failed_and_a_retry_runs_it_again(
    admin: TestClient,
) -> None:
    created = enqueue(admin, "test.flaky", fail_attempts=4)
    failed = wait_for_job(admin, created["id"])
    assert failed["status"] == "failed"
    assert failed["attempts"] == 4  # retries=3: four attempts in all
    assert "attempt 4 fails" in failed["error"]

    response = admin.post(f"/api/v1/jobs/{created['id']}/retry")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "enqueued"

    done = wait_for_job(admin, created["id"])
    assert done["status"] == "succeeded"
    assert (done["attempts"], done["max_attempts"]) == (5, 8)  # four more allowed
    assert done["error"] is None
    actions = [e["action"] for e in admin.get("/api/v1/audit").json()["items"]]
    assert actions[:2] == ["job.retry", "job.enqueue"]


def test_a_cancelled_job_never_runs(admin: TestClient, tmp_path: Path) -> None:
    # The one job thread is held by a gated job, so the next job waits in the queue.
    gate, started = tmp_path / "open", tmp_path / "started"
    blocker = enqueue(admin, "test.gate", path=str(gate), started=str(started))
    wait_for_file(started)
    waiting = enqueue(admin, "interlock.echo", message="never")

    response = admin.post(f"/api/v1/jobs/{waiting['id']}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "revoked"

    gate.touch()
    assert wait_for_job(admin, blocker["id"])["status"] == "succeeded"
    # A later job has run, so the runner has gone past the cancelled one.
    later = enqueue(admin, "interlock.echo", message="later")
    assert wait_for_job(admin, later["id"])["status"] == "succeeded"
    cancelled = admin.get(f"/api/v1/jobs/{waiting['id']}").json()
    assert cancelled["status"] == "revoked"
    assert cancelled["attempts"] == 0
    assert statuses(cancelled) == ["enqueued", "revoked"]
    assert "job.cancel" in [e["action"] for e in admin.get("/api/v1/audit").json()["items"]]


def test_a_running_job_cannot_be_cancelled(admin: TestClient, tmp_path: Path) -> None:
    gate, started = tmp_path / "open", tmp_path / "started"
    running = enqueue(admin, "test.gate", path=str(gate), started=str(started))
    wait_for_file(started)

    body = assert_problem(admin.post(f"/api/v1/jobs/{running['id']}/cancel"), 409, "conflict")
    assert "running" in body["detail"]

    gate.touch()
    assert wait_for_job(admin, running["id"])["status"] == "succeeded"


@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_a_finished_job_cannot_be_cancelled_and_a_succeeded_one_not_retried(
    admin: TestClient, action: str
) -> None:
    created = enqueue(admin, "interlock.echo")
    wait_for_job(admin, created["id"])
    audit_before = admin.get("/api/v1/audit").json()["items"]

    assert_problem(admin.post(f"/api/v1/jobs/{created['id']}/{action}"), 409, "conflict")

    assert admin.get("/api/v1/audit").json()["items"] == audit_before


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"name": "no.such.job"}, "/name"),
        ({"name": "nul\u0000in.name"}, "/name"),
        ({"name": "test.hidden"}, "/name"),
        ({"name": "interlock.echo", "args": {"unknown": 1}}, "/args"),
        ({"name": "test.gate", "args": {}}, "/args"),
        ({"name": "interlock.echo", "delay_seconds": -1}, "/delay_seconds"),
    ],
)
def test_a_job_that_cannot_be_enqueued_is_refused_and_nothing_is_recorded(
    admin: TestClient, body: dict[str, object], pointer: str
) -> None:
    problem = assert_problem(admin.post("/api/v1/jobs", json=body), 422, "validation-error")
    assert problem["errors"][0]["pointer"] == pointer
    assert admin.get("/api/v1/jobs").json()["items"] == []


@pytest.mark.parametrize(
    ("method", "path", "status", "slug"),
    [
        ("get", "/api/v1/jobs/999", 404, "not-found"),
        ("post", "/api/v1/jobs/999/cancel", 404, "not-found"),
        ("post", "/api/v1/jobs/999/retry", 404, "not-found"),
        ("get", "/api/v1/jobs/0", 422, "validation-error"),
        ("get", "/api/v1/jobs/99999999999999999999", 422, "validation-error"),
        ("get", "/api/v1/jobs?status=bogus", 422, "validation-error"),
        ("get", "/api/v1/jobs?name=a%20b", 422, "validation-error"),
        ("get", "/api/v1/jobs?cursor=nonsense", 400, "bad-request"),
        ("get", "/api/v1/jobs/stats?window_minutes=0", 422, "validation-error"),
    ],
)
def test_bad_job_requests_get_problems(
    admin: TestClient, method: str, path: str, status: int, slug: str
) -> None:
    assert_problem(getattr(admin, method)(path), status, slug)


def test_the_list_filters_by_status_and_type_and_pages_newest_first(admin: TestClient) -> None:
    first = enqueue(admin, "interlock.echo", message="1")
    failing = enqueue(admin, "test.flaky", fail_attempts=9)
    last = enqueue(admin, "interlock.echo", message="3")
    for job in (first, failing, last):
        wait_for_job(admin, job["id"])

    def ids(**params: object) -> list[int]:
        return [j["id"] for j in admin.get("/api/v1/jobs", params=params).json()["items"]]

    assert ids(status="succeeded") == [last["id"], first["id"]]
    assert ids(status="failed") == [failing["id"]]
    assert ids(name="test.flaky") == [failing["id"]]
    assert ids(name="interlock.echo", status="failed") == []
    page = admin.get("/api/v1/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in page["items"]] == [last["id"], failing["id"]]
    rest = admin.get("/api/v1/jobs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [j["id"] for j in rest["items"]] == [first["id"]]
    assert rest["next_cursor"] is None


def test_stats_count_jobs_by_state_and_type_with_throughput_and_failure_rate(
    admin: TestClient,
) -> None:
    for job in (
        enqueue(admin, "interlock.echo"),
        enqueue(admin, "interlock.echo"),
        enqueue(admin, "test.flaky", fail_attempts=9),
    ):
        wait_for_job(admin, job["id"])

    stats = admin.get("/api/v1/jobs/stats", params={"window_minutes": 10}).json()

    assert stats["by_status"]["succeeded"] == 2
    assert stats["by_status"]["failed"] == 1
    assert stats["by_name"] == {"interlock.echo": {"succeeded": 2}, "test.flaky": {"failed": 1}}
    assert stats["finished"] == 3
    assert stats["throughput_per_minute"] == pytest.approx(0.3)
    assert stats["failure_rate"] == pytest.approx(1 / 3)
    assert stats["queues"] == [
        {"queue": "default", "ready": 0, "scheduled": 0},
        {"queue": "side", "ready": 0, "scheduled": 0},
    ]


def test_the_schedule_lists_periodic_jobs_with_their_next_run(admin: TestClient) -> None:
    items = admin.get("/api/v1/jobs/schedule").json()["items"]

    by_name = {item["name"]: item for item in items}
    assert {"interlock.sweep_login_sessions", "interlock.verify_audit_chain"} <= set(by_name)
    sweep = by_name["interlock.sweep_login_sessions"]
    assert sweep["cron"] == "*/15 * * * *"
    next_run = datetime.fromisoformat(sweep["next_run_at"])
    assert next_run.minute % 15 == 0 and next_run.second == 0


def test_the_embedded_runner_is_listed_as_a_live_worker(admin: TestClient) -> None:
    items = admin.get("/api/v1/jobs/workers").json()["items"]

    assert [(w["status"], w["embedded"], w["queues"]) for w in items] == [
        ("alive", True, ["default", "side"])
    ]


def test_job_types_are_listed_with_what_operators_may_enqueue(admin: TestClient) -> None:
    types = {t["name"]: t for t in admin.get("/api/v1/jobs/types").json()}

    assert types["interlock.echo"]["enqueueable"] is True
    assert types["test.hidden"]["enqueueable"] is False
    assert types["interlock.verify_audit_chain"]["cron"] == "7 * * * *"


def test_metrics_show_jobs_by_state_and_type_duration_and_queue_depth(admin: TestClient) -> None:
    wait_for_job(admin, enqueue(admin, "interlock.echo")["id"])

    text = admin.get("/metrics").text

    assert 'interlock_jobs{name="interlock.echo",status="succeeded"} 1.0' in text
    assert 'interlock_job_queue_depth{kind="ready",queue="default"} 0.0' in text
    assert 'interlock_job_duration_seconds_count{name="interlock.echo",outcome="succeeded"}' in text


def test_a_job_the_queue_refuses_is_recorded_as_failed_and_the_api_says_unavailable(
    admin: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = admin.app.state.jobs  # type: ignore[attr-defined]

    def refuse(*args: object, **kwargs: object) -> None:
        raise ConnectionError("queue down")

    monkeypatch.setattr(jobs.queues, "enqueue", refuse)

    assert_problem(admin.post("/api/v1/jobs", json={"name": "interlock.echo"}), 503, "unavailable")

    (job,) = admin.get("/api/v1/jobs").json()["items"]
    assert job["status"] == "failed"
    assert "queue refused" in job["error"]


def test_a_delayed_job_waits_on_the_schedule_then_runs(admin: TestClient) -> None:
    response = admin.post(
        "/api/v1/jobs", json={"name": "interlock.echo", "args": {}, "delay_seconds": 0.3}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "scheduled"
    assert created["run_at"] is not None

    done = wait_for_job(admin, created["id"])

    assert done["status"] == "succeeded"
    assert statuses(done) == ["scheduled", "enqueued", "running", "succeeded"]
    assert done["started_at"] >= created["run_at"]


def test_a_scheduled_job_can_be_cancelled_before_its_time(admin: TestClient) -> None:
    response = admin.post("/api/v1/jobs", json={"name": "interlock.echo", "delay_seconds": 3600})
    created = response.json()
    assert admin.get("/api/v1/jobs/stats").json()["queues"][0] == {
        "queue": "default",
        "ready": 0,
        "scheduled": 1,
    }

    cancelled = admin.post(f"/api/v1/jobs/{created['id']}/cancel").json()

    assert cancelled["status"] == "revoked"
    assert statuses(cancelled) == ["scheduled", "revoked"]
