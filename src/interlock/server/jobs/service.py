"""Job records: what the API and the queue's signals do to the `jobs` table.

Every function takes a session in the caller's transaction. The API's mutations (enqueue,
cancel, retry) write their audit entry in the same transaction; the transitions the runner
records (started, succeeded, ...) are the system's own bookkeeping and are not audited.
Each transition is idempotent: recording a state the job is already in changes nothing, so
a signal delivered twice, or a job run twice, leaves one history.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from interlock.server.audit.service import Actor, record
from interlock.server.db.base import utcnow
from interlock.server.jobs.models import FINISHED, WAITING, Job, JobEvent, JobStatus
from interlock.server.jobs.registry import JobType
from interlock.server.pagination import paginate
from interlock.server.problems import Problem, ProblemType, conflict, not_found

MAX_ERROR_CHARS = 8000


def new_task_id() -> str:
    return uuid.uuid4().hex


def snapshot(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "status": job.status,
        "args": job.args,
        "attempts": job.attempts,
    }


def add_event(
    job: Job, status: JobStatus, detail: str | None = None, worker_id: str | None = None
) -> None:
    job.events.append(
        JobEvent(
            status=status.value,
            at=utcnow(),
            attempt=job.attempts,
            worker_id=worker_id,
            detail=detail[:2000] if detail else None,
        )
    )
    job.updated_at = utcnow()


def create_job(
    session: Session,
    job_type: JobType,
    args: dict[str, Any],
    *,
    task_id: str | None = None,
    status: JobStatus = JobStatus.ENQUEUED,
    periodic: bool = False,
    run_at: datetime | None = None,
    detail: str | None = None,
) -> Job:
    job = Job(
        task_id=task_id or new_task_id(),
        name=job_type.name,
        queue=job_type.queue,
        status=status.value,
        args=_plain(args),
        periodic=periodic,
        max_attempts=job_type.max_attempts,
        enqueued_at=utcnow(),
        run_at=run_at,
        events=[],
    )
    session.add(job)
    add_event(job, status, detail)
    session.flush()
    return job


def enqueue(
    session: Session,
    actor: Actor,
    job_type: JobType,
    args: dict[str, Any],
    *,
    run_at: datetime | None = None,
) -> Job:
    """Record a job asked for by a person, to run now or at `run_at`; the caller puts it on
    the queue after commit."""
    if not job_type.enqueueable:
        detail = f"job type {job_type.name!r} is not one operators may enqueue"
        raise Problem(
            ProblemType.VALIDATION, detail, errors=[{"pointer": "/name", "detail": detail}]
        )
    try:
        job_type.bind(args)
    except TypeError as exc:
        detail = f"arguments do not fit job type {job_type.name!r}: {exc}"
        raise Problem(
            ProblemType.VALIDATION, detail, errors=[{"pointer": "/args", "detail": detail}]
        ) from exc
    job = create_job(
        session,
        job_type,
        args,
        status=JobStatus.SCHEDULED if run_at else JobStatus.ENQUEUED,
        run_at=run_at,
        detail=f"enqueued by {actor.name}",
    )
    record(session, actor, "job.enqueue", "job", str(job.id), after=snapshot(job))
    return job


def find_by_task(session: Session, task_id: str) -> Job | None:
    return session.scalar(select(Job).where(Job.task_id == task_id))


def get_job(session: Session, job_id: int, *, with_events: bool = False) -> Job:
    statement = select(Job).where(Job.id == job_id)
    if with_events:
        statement = statement.options(selectinload(Job.events))
    job = session.scalar(statement)
    if job is None:
        raise not_found(f"job {job_id}")
    return job


def list_jobs(
    session: Session,
    *,
    limit: int,
    cursor: str | None,
    status: JobStatus | None = None,
    name: str | None = None,
) -> tuple[Sequence[Job], str | None]:
    """Newest first."""
    statement: Select[tuple[Job]] = select(Job)
    if status is not None:
        statement = statement.where(Job.status == status.value)
    if name is not None:
        statement = statement.where(Job.name == name)
    return paginate(session, statement, Job.id, limit=limit, cursor=cursor, newest_first=True)


def cancel(session: Session, actor: Actor, job: Job) -> Job:
    """Revoke a job that has not started; the caller revokes it in Huey after commit."""
    if JobStatus(job.status) not in WAITING:
        raise conflict(
            f"job {job.id} is {job.status}: only a queued, scheduled or retrying job can be "
            "cancelled",
            job_status=job.status,
        )
    before = snapshot(job)
    job.status = JobStatus.REVOKED.value
    job.finished_at = utcnow()
    add_event(job, JobStatus.REVOKED, f"cancelled by {actor.name}")
    record(session, actor, "job.cancel", "job", str(job.id), before=before, after=snapshot(job))
    return job


def retry(session: Session, actor: Actor, job: Job, job_type: JobType) -> Job:
    """Queue a failed job again, with its type's retries afresh; the caller puts it on the
    queue after commit. Attempts keep counting."""
    if job.status != JobStatus.FAILED:
        raise conflict(
            f"job {job.id} is {job.status}: only a failed job can be retried", job_status=job.status
        )
    before = snapshot(job)
    job.status = JobStatus.ENQUEUED.value
    job.finished_at = None
    job.max_attempts = job.attempts + job_type.max_attempts
    add_event(job, JobStatus.ENQUEUED, f"retried by {actor.name}")
    record(session, actor, "job.retry", "job", str(job.id), before=before, after=snapshot(job))
    return job


# Transitions recorded by the queue's signals and the runner.


def mark_waiting(
    session: Session,
    job_type: JobType,
    task_id: str,
    args: dict[str, Any],
    status: JobStatus,
    run_at: datetime | None,
) -> None:
    """The queue holds the task (ENQUEUED) or its schedule does (SCHEDULED)."""
    job = find_by_task(session, task_id)
    if job is None:
        create_job(session, job_type, args, task_id=task_id, status=status, run_at=run_at)
        return
    current = JobStatus(job.status)
    if current in FINISHED or current == JobStatus.RUNNING:
        return
    if current == JobStatus.RETRYING:
        # Waiting out its backoff, then queued: still "retrying" until the attempt starts.
        job.run_at = run_at or job.run_at
        return
    if current != status:
        job.status = status.value
        job.run_at = run_at
        add_event(job, status)


def start_attempt(
    session: Session, job_type: JobType, task_id: str, args: dict[str, Any], worker_id: str
) -> Job | None:
    """The attempt may run: returns the job, now running. None: it must not (cancelled or
    already finished, e.g. a duplicate delivery of a job that completed)."""
    job = find_by_task(session, task_id)
    if job is None:
        job = create_job(session, job_type, args, task_id=task_id)
    if JobStatus(job.status) in FINISHED:
        return None
    job.status = JobStatus.RUNNING.value
    job.attempts += 1
    job.started_at = utcnow()
    job.worker_id = worker_id
    add_event(job, JobStatus.RUNNING, worker_id=worker_id)
    session.flush()
    return job


def finish_attempt(
    session: Session,
    task_id: str,
    *,
    result: Any = None,
    error: str | None = None,
    will_retry: bool = False,
    duration: float | None = None,
) -> Job | None:
    job = find_by_task(session, task_id)
    if job is None or job.status != JobStatus.RUNNING:
        return job
    job.duration_seconds = duration
    if error is None:
        job.status = JobStatus.SUCCEEDED.value
        job.result = _plain(result)
        job.error = None
        job.finished_at = utcnow()
        add_event(job, JobStatus.SUCCEEDED, worker_id=job.worker_id)
        return job
    job.error = error[:MAX_ERROR_CHARS]
    first_line = error.strip().splitlines()[-1] if error.strip() else error
    if will_retry:
        job.status = JobStatus.RETRYING.value
        add_event(job, JobStatus.RETRYING, first_line, job.worker_id)
    else:
        job.status = JobStatus.FAILED.value
        job.finished_at = utcnow()
        add_event(job, JobStatus.FAILED, first_line, job.worker_id)
    return job


def mark_revoked(session: Session, task_id: str, detail: str) -> None:
    job = find_by_task(session, task_id)
    if job is not None and JobStatus(job.status) not in FINISHED:
        job.status = JobStatus.REVOKED.value
        job.finished_at = utcnow()
        add_event(job, JobStatus.REVOKED, detail)


def claim_periodic(session: Session, job_type: JobType, minute: datetime) -> Job | None:
    """The job of this periodic type for this minute, if no node has created it yet.

    The task id is derived from the minute, and task ids are unique: however many workers
    tick at once, one of them creates it (the others find it) and enqueues it.
    """
    task_id = f"periodic:{job_type.name}:{minute:%Y%m%dT%H%M}"
    if find_by_task(session, task_id) is not None:
        return None
    return create_job(session, job_type, {}, task_id=task_id, periodic=True)


@dataclass(frozen=True, slots=True)
class Stats:
    by_status: dict[str, int]
    by_name: dict[str, dict[str, int]]
    window_minutes: int
    finished: int
    succeeded: int
    failed: int


def stats(session: Session, window: timedelta) -> Stats:
    by_status: dict[str, int] = {s.value: 0 for s in JobStatus}
    by_name: dict[str, dict[str, int]] = {}
    rows = session.execute(
        select(Job.name, Job.status, func.count()).group_by(Job.name, Job.status)
    ).all()
    for name, status, count in rows:
        by_status[status] = by_status.get(status, 0) + count
        by_name.setdefault(name, {})[status] = count
    since = utcnow() - window
    recent: dict[str, int] = dict(
        session.execute(
            select(Job.status, func.count())
            .where(Job.finished_at >= since)
            .where(Job.status.in_([JobStatus.SUCCEEDED.value, JobStatus.FAILED.value]))
            .group_by(Job.status)
        ).all()
    )
    succeeded = recent.get(JobStatus.SUCCEEDED.value, 0)
    failed = recent.get(JobStatus.FAILED.value, 0)
    return Stats(
        by_status=by_status,
        by_name=by_name,
        window_minutes=int(window.total_seconds() // 60),
        finished=succeeded + failed,
        succeeded=succeeded,
        failed=failed,
    )


def last_runs(session: Session, names: Sequence[str]) -> dict[str, Job]:
    """The newest job of each name."""
    newest = (
        select(func.max(Job.id)).where(Job.name.in_(list(names))).group_by(Job.name)
    ).scalar_subquery()
    jobs = session.scalars(select(Job).where(Job.id.in_(newest))).all()
    return {job.name: job for job in jobs}


def _plain(value: Any) -> Any:
    """JSON round trip: what is stored is what reads give back, whatever the backend."""
    return json.loads(json.dumps(value, default=str))
