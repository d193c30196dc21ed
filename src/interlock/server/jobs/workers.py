"""The worker registry: heartbeats, and what happens to the jobs of a worker that died."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from interlock.server.db.base import utcnow
from interlock.server.jobs import registry
from interlock.server.jobs.models import Job, JobStatus, JobWorker, WorkerStatus
from interlock.server.jobs.service import add_event


def new_worker_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


def register(
    session: Session, worker_id: str, queues: Sequence[str], concurrency: int, embedded: bool
) -> JobWorker:
    now = utcnow()
    worker = JobWorker(
        id=worker_id,
        host=socket.gethostname()[:255],
        pid=os.getpid(),
        queues=list(queues),
        concurrency=concurrency,
        embedded=embedded,
        status=WorkerStatus.ALIVE.value,
        started_at=now,
        last_heartbeat_at=now,
    )
    session.add(worker)
    return worker


def heartbeat(session: Session, worker_id: str) -> None:
    """Record that the worker is alive. A worker another node took for dead (it was silent
    too long: a stalled machine) comes back to life; jobs reaped meanwhile may run twice,
    which idempotent jobs allow."""
    worker = session.get(JobWorker, worker_id)
    if worker is None or worker.status == WorkerStatus.STOPPED:
        return
    worker.last_heartbeat_at = utcnow()
    if worker.status == WorkerStatus.DEAD:
        worker.status = WorkerStatus.ALIVE.value
        worker.stopped_at = None


def stop(session: Session, worker_id: str) -> None:
    worker = session.get(JobWorker, worker_id)
    if worker is not None:
        worker.status = WorkerStatus.STOPPED.value
        worker.stopped_at = utcnow()


def shown_status(worker: JobWorker, now: datetime, timeout: timedelta) -> WorkerStatus:
    """A worker that stopped sending heartbeats is dead, whether or not it was reaped yet."""
    if worker.status == WorkerStatus.ALIVE and worker.last_heartbeat_at < now - timeout:
        return WorkerStatus.DEAD
    return WorkerStatus(worker.status)


def list_workers(session: Session) -> Sequence[JobWorker]:
    return session.scalars(select(JobWorker).order_by(JobWorker.started_at.desc())).all()


def running_counts(session: Session) -> dict[str, int]:
    counts: dict[str, int] = {}
    for worker_id in session.scalars(
        select(Job.worker_id).where(Job.status == JobStatus.RUNNING.value)
    ):
        if worker_id is not None:
            counts[worker_id] = counts.get(worker_id, 0) + 1
    return counts


@dataclass(frozen=True, slots=True)
class Requeue:
    """A job to put back on the queue once the reaping transaction has committed."""

    name: str
    task_id: str
    args: dict[str, object]


def reap(
    session: Session, timeout: timedelta, now: datetime | None = None, reaper: str | None = None
) -> list[Requeue]:
    """Mark silent workers dead; their running jobs are retried if idempotent, failed if not.

    Runs in a write transaction, so two live workers reaping at once do it one after the
    other, and the second finds nothing left to do. Running jobs of a worker that stopped
    (shut down before they finished) are handled the same way.
    """
    now = now or utcnow()
    silent = session.scalars(
        select(JobWorker).where(
            JobWorker.status == WorkerStatus.ALIVE.value,
            JobWorker.last_heartbeat_at < now - timeout,
            # The reaper knows it is alive, however late its own heartbeat.
            JobWorker.id != (reaper or ""),
        )
    ).all()
    for worker in silent:
        worker.status = WorkerStatus.DEAD.value
        worker.stopped_at = now
    live = select(JobWorker.id).where(JobWorker.status == WorkerStatus.ALIVE.value)
    orphans = session.scalars(
        select(Job).where(
            Job.status == JobStatus.RUNNING.value,
            or_(Job.worker_id.is_(None), Job.worker_id.not_in(live)),
        )
    ).all()
    requeue: list[Requeue] = []
    for job in orphans:
        job_type = registry.get(job.name)
        detail = f"worker {job.worker_id} was lost while the job ran"
        if job_type is not None and job_type.idempotent:
            job.status = JobStatus.RETRYING.value
            job.max_attempts = job.attempts + job_type.max_attempts
            add_event(job, JobStatus.RETRYING, detail + "; running it again (idempotent)")
            requeue.append(Requeue(job.name, job.task_id, dict(job.args)))
        else:
            job.status = JobStatus.FAILED.value
            job.finished_at = now
            job.error = detail
            add_event(job, JobStatus.FAILED, detail + "; not idempotent, so not run again")
    return requeue
