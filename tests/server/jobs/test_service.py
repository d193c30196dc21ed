"""Job records, the reaper, periodic claims, backoff and the built-in jobs, without a runner."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from interlock.server.auth import service as auth
from interlock.server.auth.models import LoginSession
from interlock.server.db.base import utcnow
from interlock.server.db.engine import Database
from interlock.server.jobs import builtin, registry, service, workers
from interlock.server.jobs.models import Job, JobStatus, JobWorker, WorkerStatus
from interlock.server.jobs.registry import Backoff, JobContext
from interlock.server.jobs.runner import Runner
from interlock.server.jobs.system import JobSystem
from interlock.server.settings import Settings
from tests.helpers import TEST_ACTOR

HOUR = timedelta(hours=1)


def context(db: Database, settings: Settings, attempt: int = 1) -> JobContext:
    return JobContext(db=db, task_id="t", attempt=attempt, settings=settings)


def a_job_type(name: str) -> registry.JobType:
    registry.load("tests.server.jobs.sample_jobs")
    found = registry.get(name)
    assert found is not None
    return found


@pytest.mark.parametrize(("attempt", "nominal"), [(1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)])
def test_backoff_grows_exponentially_up_to_its_cap_with_jitter(
    attempt: int, nominal: float
) -> None:
    backoff = Backoff(base=2.0, factor=2.0, cap=60.0)
    rng = random.Random(attempt)

    delays = [backoff.delay(attempt, rng) for _ in range(200)]

    assert all(nominal / 2 <= d <= nominal for d in delays)
    assert len(set(delays)) > 100  # jittered: retries that failed together spread out


@pytest.mark.parametrize(
    ("cron", "minute", "due"),
    [
        ("*/15 * * * *", datetime(2026, 1, 1, 10, 30, tzinfo=UTC), True),
        ("*/15 * * * *", datetime(2026, 1, 1, 10, 31, tzinfo=UTC), False),
        ("7 * * * *", datetime(2026, 1, 1, 23, 7, 42, tzinfo=UTC), True),
        ("0 3 * * MON", datetime(2026, 1, 5, 3, 0, tzinfo=UTC), True),  # a Monday
        ("0 3 * * MON", datetime(2026, 1, 6, 3, 0, tzinfo=UTC), False),
    ],
)
def test_a_cron_expression_says_which_minutes_a_periodic_job_is_due(
    cron: str, minute: datetime, due: bool
) -> None:
    job_type = registry.JobType(name="x", func=lambda ctx: None, cron=cron)

    assert job_type.due_at(minute) is due


def test_the_next_run_is_the_first_matching_minute_after_now() -> None:
    job_type = registry.JobType(name="x", func=lambda ctx: None, cron="*/15 * * * *")

    assert job_type.next_run(datetime(2026, 1, 1, 10, 31, 5, tzinfo=UTC)) == datetime(
        2026, 1, 1, 10, 45, tzinfo=UTC
    )


def test_a_bad_cron_expression_is_refused_when_the_job_type_is_declared() -> None:
    with pytest.raises(ValueError, match="bad cron expression"):
        registry.job("test.bad_cron", cron="61 * * * *")(lambda ctx: None)
    assert registry.get("test.bad_cron") is None


def test_a_periodic_run_is_claimed_once_per_minute_however_many_nodes_try(db: Database) -> None:
    job_type = registry.get("interlock.sweep_login_sessions")
    assert job_type is not None
    minute = datetime(2026, 1, 1, 10, 30, tzinfo=UTC)

    with db.write_session() as session:
        first = service.claim_periodic(session, job_type, minute)
    with db.write_session() as session:
        second = service.claim_periodic(session, job_type, minute)
        later = service.claim_periodic(session, job_type, minute + timedelta(minutes=15))

    assert first is not None and first.periodic
    assert second is None
    assert later is not None and later.id != first.id


def test_a_duplicate_delivery_of_a_finished_job_does_not_run_it_again(db: Database) -> None:
    job_type = a_job_type("test.flaky")
    with db.write_session() as session:
        job = service.create_job(session, job_type, {})
        assert service.start_attempt(session, job_type, job.task_id, {}, "w1") is not None
        service.finish_attempt(session, job.task_id, result={"attempt": 1})
    with db.write_session() as session:
        again = service.start_attempt(session, job_type, job.task_id, {}, "w2")
        found = service.get_job(session, job.id, with_events=True)

    assert again is None
    assert (found.status, found.attempts, found.worker_id) == ("succeeded", 1, "w1")
    assert [e.status for e in found.events] == ["enqueued", "running", "succeeded"]


def test_recording_a_state_twice_leaves_one_history_entry(db: Database) -> None:
    job_type = a_job_type("test.flaky")
    with db.write_session() as session:
        job = service.create_job(session, job_type, {})
        for _ in range(2):
            service.mark_waiting(session, job_type, job.task_id, {}, JobStatus.ENQUEUED, None)
            service.mark_revoked(session, job.task_id, "revoked")
    with db.read_session() as session:
        events = service.get_job(session, job.id, with_events=True).events
    assert [e.status for e in events] == ["enqueued", "revoked"]


def _worker(db: Database, worker_id: str, heartbeat_age: timedelta) -> None:
    with db.write_session() as session:
        workers.register(session, worker_id, ["default"], 1, embedded=False)
        session.flush()
        session.execute(
            update(JobWorker)
            .where(JobWorker.id == worker_id)
            .values(last_heartbeat_at=utcnow() - heartbeat_age)
        )


def _running(db: Database, name: str, worker_id: str) -> int:
    job_type = a_job_type(name)
    with db.write_session() as session:
        job = service.create_job(session, job_type, {"path": "x"})
        service.start_attempt(session, job_type, job.task_id, job.args, worker_id)
        return job.id


def test_the_reaper_marks_a_silent_worker_dead_and_reruns_only_its_idempotent_jobs(
    db: Database,
) -> None:
    _worker(db, "live", timedelta(seconds=1))
    _worker(db, "silent", timedelta(minutes=5))
    keeps_running = _running(db, "test.gate", "live")
    rerun = _running(db, "test.gate", "silent")
    failed = _running(db, "test.gate_once", "silent")

    with db.write_session() as session:
        requeue = workers.reap(session, timedelta(minutes=1))
    with db.write_session() as session:
        again = workers.reap(session, timedelta(minutes=1))

    with db.read_session() as session:
        status = {w.id: w.status for w in session.scalars(select(JobWorker))}
        jobs = {j.id: j for j in session.scalars(select(Job))}
        assert [r.task_id for r in requeue] == [jobs[rerun].task_id]
    assert again == []  # the second reaper finds nothing left to do
    assert status == {"live": WorkerStatus.ALIVE, "silent": WorkerStatus.DEAD}
    assert jobs[keeps_running].status == JobStatus.RUNNING
    assert jobs[rerun].status == JobStatus.RETRYING
    assert jobs[failed].status == JobStatus.FAILED
    assert "was lost" in (jobs[failed].error or "")


def test_a_worker_that_stopped_sending_heartbeats_is_shown_dead_before_it_is_reaped(
    db: Database,
) -> None:
    _worker(db, "quiet", timedelta(minutes=5))
    with db.read_session() as session:
        (worker,) = workers.list_workers(session)
        assert worker.status == WorkerStatus.ALIVE
        shown = workers.shown_status(worker, utcnow(), timedelta(minutes=1))
    assert shown == WorkerStatus.DEAD


def test_the_session_sweep_deletes_expired_sessions_and_a_second_run_changes_nothing(
    db: Database, settings: Settings
) -> None:
    with db.write_session() as session:
        (user,) = auth.list_users(session, limit=10, cursor=None)[0]
        auth.open_login_session(session, user, hours=1)
        auth.open_login_session(session, user, hours=1)
        session.flush()
        first = session.scalars(select(LoginSession)).first()
        assert first is not None
        first.expires_at = utcnow() - HOUR

    assert builtin.sweep_login_sessions(context(db, settings)) == {"deleted": 1}
    assert builtin.sweep_login_sessions(context(db, settings)) == {"deleted": 0}
    with db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(LoginSession)) == 1


def test_the_audit_check_job_reports_an_intact_chain_and_a_broken_one(
    db: Database, settings: Settings
) -> None:
    intact = builtin.verify_audit_chain(context(db, settings))
    assert intact["ok"] is True and intact["checked"] > 0

    from interlock.server.audit.models import AuditEntry

    with db.write_session() as session:
        session.execute(update(AuditEntry).where(AuditEntry.seq == 1).values(action="forged"))
    broken = builtin.verify_audit_chain(context(db, settings))
    assert broken["ok"] is False and broken["seq"] == 1


def test_echo_fails_the_attempts_it_is_asked_to_then_succeeds(
    db: Database, settings: Settings
) -> None:
    with pytest.raises(RuntimeError, match="attempt 1"):
        builtin.echo(context(db, settings, attempt=1), message="m", fail_attempts=1)
    assert builtin.echo(context(db, settings, attempt=2), message="m", fail_attempts=1) == {
        "message": "m",
        "attempt": 2,
    }


def test_enqueueing_records_the_job_and_its_audit_entry_together(db: Database) -> None:
    job_type = registry.get("interlock.echo")
    assert job_type is not None
    with db.write_session() as session:
        job = service.enqueue(session, TEST_ACTOR, job_type, {"message": "hi"})
    with db.read_session() as session:
        from interlock.server.audit.models import AuditEntry

        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert entry is not None
    assert (entry.action, entry.resource_id) == ("job.enqueue", str(job.id))
    assert entry.after == service.snapshot(job)


def test_each_node_starts_the_periodic_jobs_due_this_minute_once_between_them(
    db: Database, settings: Settings
) -> None:
    system = JobSystem(settings, db)
    nodes = [Runner(system, concurrency=1), Runner(system, concurrency=1)]
    minute = datetime(2026, 1, 1, 10, 7, 30, tzinfo=UTC)  # the sweep is not due; the audit is

    started = [node.start_periodic(minute) for node in nodes]
    repeated = nodes[0].start_periodic(minute)

    assert len(started[0]) == 1 and started[1] == [] and repeated == []
    with db.read_session() as session:
        job = service.get_job(session, started[0][0])
    assert (job.name, job.status, job.periodic) == (
        "interlock.verify_audit_chain",
        "enqueued",
        True,
    )
    assert system.queues.depth()["default"] == (1, 0)
    system.close()


def test_a_reaper_never_takes_itself_for_dead_and_a_worker_taken_for_dead_comes_back(
    db: Database,
) -> None:
    _worker(db, "stalled", timedelta(minutes=5))
    _worker(db, "other", timedelta(minutes=5))

    with db.write_session() as session:
        workers.reap(session, timedelta(minutes=1), reaper="stalled")
    with db.write_session() as session:
        workers.heartbeat(session, "other")

    with db.read_session() as session:
        status = {w.id: w.status for w in session.scalars(select(JobWorker))}
    assert status == {"stalled": WorkerStatus.ALIVE, "other": WorkerStatus.ALIVE}
    with db.read_session() as session:
        other = session.get(JobWorker, "other")
        assert other is not None and other.stopped_at is None
