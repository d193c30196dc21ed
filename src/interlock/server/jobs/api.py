"""/api/v1/jobs: the job list and each job's life, cancel and retry, stats, workers, schedule.

Instance admins only, reads included: jobs are instance-wide and their arguments and results
may carry any project's data.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Path, Query, Request, Response

from interlock.server.auth.deps import Access, Requirement, get_db, get_settings
from interlock.server.auth.roles import Action
from interlock.server.db.base import utcnow
from interlock.server.db.engine import Database
from interlock.server.jobs import registry, service, workers
from interlock.server.jobs.models import Job, JobStatus, JobWorker
from interlock.server.jobs.registry import NAME_PATTERN
from interlock.server.jobs.schemas import (
    JobCreate,
    JobDetail,
    JobEventOut,
    JobOut,
    JobPage,
    JobStats,
    JobTypeOut,
    QueueDepth,
    Schedule,
    ScheduleEntry,
    WorkerList,
    WorkerOut,
)
from interlock.server.jobs.system import JobSystem
from interlock.server.pagination import DEFAULT_PAGE_SIZE, MAX_ID, Cursor, Limit
from interlock.server.settings import Settings

log = structlog.get_logger("interlock.jobs")

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

Admin = Annotated[Access, Depends(Requirement(Action.ADMINISTER, "instance"))]
Db = Annotated[Database, Depends(get_db)]
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]
# Queueing may fail after the job is recorded (a problem, declared so the API document says).
QUEUE_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"description": "The job queue is unavailable; the job was not queued."}
}


def get_jobs(request: Request) -> JobSystem:
    system: JobSystem = request.app.state.jobs
    return system


Jobs = Annotated[JobSystem, Depends(get_jobs)]


def job_out(job: Job) -> JobOut:
    return JobOut(
        id=job.id,
        name=job.name,
        status=JobStatus(job.status),
        queue=job.queue,
        args=job.args,
        periodic=job.periodic,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        result=job.result,
        error=job.error,
        worker_id=job.worker_id,
        enqueued_at=job.enqueued_at,
        run_at=job.run_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        duration_seconds=job.duration_seconds,
    )


def job_detail(job: Job) -> JobDetail:
    history = [
        JobEventOut(
            status=JobStatus(e.status),
            at=e.at,
            attempt=e.attempt,
            worker_id=e.worker_id,
            detail=e.detail,
        )
        for e in job.events
    ]
    return JobDetail(**job_out(job).model_dump(), history=history)


@router.get("", response_model=JobPage)
def list_jobs(
    db: Db,
    access: Admin,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this state.")] = None,
    name: Annotated[
        str | None, Query(pattern=NAME_PATTERN, description="Only this job type.")
    ] = None,
) -> JobPage:
    """Newest first."""
    with db.read_session() as session:
        items, next_cursor = service.list_jobs(
            session, limit=limit, cursor=cursor, status=status, name=name
        )
        return JobPage(items=[job_out(j) for j in items], next_cursor=next_cursor)


@router.post("", response_model=JobDetail, status_code=201, responses=QUEUE_DOWN)
def enqueue_job(body: JobCreate, response: Response, jobs: Jobs, access: Admin) -> JobDetail:
    """Queue a job of a type registered as enqueueable (GET /api/v1/jobs/types)."""
    job = jobs.enqueue(access.actor, body.name, body.args, body.delay_seconds)
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    with jobs.db.read_session() as session:
        return job_detail(service.get_job(session, job.id, with_events=True))


@router.get("/types", response_model=list[JobTypeOut])
def list_job_types(access: Admin) -> list[JobTypeOut]:
    return [
        JobTypeOut(
            name=t.name,
            description=t.description,
            queue=t.queue,
            retries=t.retries,
            idempotent=t.idempotent,
            enqueueable=t.enqueueable,
            cron=t.cron,
        )
        for t in registry.all_types()
    ]


@router.get("/stats", response_model=JobStats)
def job_stats(
    jobs: Jobs,
    access: Admin,
    window_minutes: Annotated[
        int, Query(ge=1, le=7 * 24 * 60, description="Throughput and failure rate over this.")
    ] = 60,
) -> JobStats:
    with jobs.db.read_session() as session:
        found = service.stats(session, timedelta(minutes=window_minutes))
    try:
        queues: list[QueueDepth] | None = [
            QueueDepth(queue=q, ready=ready, scheduled=scheduled)
            for q, (ready, scheduled) in jobs.queues.depth().items()
        ]
    except Exception:
        log.warning("queue depth unavailable", exc_info=True)
        queues = None
    return JobStats(
        by_status=found.by_status,
        by_name=found.by_name,
        window_minutes=found.window_minutes,
        finished=found.finished,
        succeeded=found.succeeded,
        failed=found.failed,
        throughput_per_minute=found.finished / window_minutes,
        failure_rate=found.failed / found.finished if found.finished else None,
        queues=queues,
        backend=jobs.queues.backend,
    )


@router.get("/workers", response_model=WorkerList)
def list_workers(
    db: Db, settings: Annotated[Settings, Depends(get_settings)], access: Admin
) -> WorkerList:
    """Every worker seen, newest first; one whose heartbeat stopped is shown dead."""
    timeout = timedelta(seconds=settings.jobs_worker_timeout_seconds)
    now = utcnow()
    with db.read_session() as session:
        running = workers.running_counts(session)
        found: list[JobWorker] = list(workers.list_workers(session))
    return WorkerList(
        items=[
            WorkerOut(
                id=w.id,
                host=w.host,
                pid=w.pid,
                queues=w.queues,
                concurrency=w.concurrency,
                embedded=w.embedded,
                status=workers.shown_status(w, now, timeout),
                started_at=w.started_at,
                last_heartbeat_at=w.last_heartbeat_at,
                stopped_at=w.stopped_at,
                running=running.get(w.id, 0),
            )
            for w in found
        ]
    )


@router.get("/schedule", response_model=Schedule)
def job_schedule(db: Db, access: Admin) -> Schedule:
    """The periodic jobs, with their cron expression and next run time (UTC)."""
    periodic = [t for t in registry.all_types() if t.cron is not None]
    now = utcnow()
    with db.read_session() as session:
        last = service.last_runs(session, [t.name for t in periodic])
    items = []
    for job_type in periodic:
        assert job_type.cron is not None
        next_run = job_type.next_run(now)
        assert next_run is not None
        previous = last.get(job_type.name)
        items.append(
            ScheduleEntry(
                name=job_type.name,
                cron=job_type.cron,
                queue=job_type.queue,
                description=job_type.description,
                next_run_at=next_run,
                last_job_id=previous.id if previous else None,
                last_status=JobStatus(previous.status) if previous else None,
                last_enqueued_at=previous.enqueued_at if previous else None,
            )
        )
    return Schedule(items=items)


@router.get("/{job_id}", response_model=JobDetail)
def get_job(job_id: JobId, db: Db, access: Admin) -> JobDetail:
    """The job with its state history, oldest first."""
    with db.read_session() as session:
        return job_detail(service.get_job(session, job_id, with_events=True))


@router.post("/{job_id}/cancel", response_model=JobDetail)
def cancel_job(job_id: JobId, jobs: Jobs, access: Admin) -> JobDetail:
    """Revoke a job that is queued, scheduled or waiting to retry; 409 otherwise."""
    jobs.cancel(access.actor, job_id)
    with jobs.db.read_session() as session:
        return job_detail(service.get_job(session, job_id, with_events=True))


@router.post("/{job_id}/retry", response_model=JobDetail, responses=QUEUE_DOWN)
def retry_job(job_id: JobId, jobs: Jobs, access: Admin) -> JobDetail:
    """Queue a failed job again (its attempts keep counting); 409 for any other state."""
    jobs.retry(access.actor, job_id)
    with jobs.db.read_session() as session:
        return job_detail(service.get_job(session, job_id, with_events=True))
