"""One process's job system: the queues, the tracker on them, and the operations that touch
both our records and the queue (a record is committed first, then the task is queued)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog

from interlock.server.audit.service import Actor
from interlock.server.db.base import utcnow
from interlock.server.db.engine import Database
from interlock.server.jobs import metrics, registry, service
from interlock.server.jobs.models import Job, JobStatus
from interlock.server.jobs.queue import JobQueues
from interlock.server.jobs.tracking import Tracker
from interlock.server.problems import Problem, ProblemType
from interlock.server.settings import Settings

log = structlog.get_logger("interlock.jobs")


class JobSystem:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.queues = JobQueues(settings, db)
        self.tracker = Tracker(db, self.queues)
        metrics.publish(self)

    def enqueue(
        self, actor: Actor, name: str, args: dict[str, Any], delay: float | None = None
    ) -> Job:
        """Record and queue a job of an enqueueable type (to run after `delay` seconds, if
        given); Problem(422) for anything else."""
        job_type = registry.get(name)
        if job_type is None:
            detail = f"no job type {name!r}; GET /api/v1/jobs/types lists them"
            raise Problem(
                ProblemType.VALIDATION, detail, errors=[{"pointer": "/name", "detail": detail}]
            )
        with self.db.write_session() as session:
            run_at = utcnow() + timedelta(seconds=delay) if delay else None
            job = service.enqueue(session, actor, job_type, args, run_at=run_at)
        self._put(job)
        return job

    def cancel(self, actor: Actor, job_id: int) -> Job:
        with self.db.write_session() as session:
            job = service.cancel(session, actor, service.get_job(session, job_id))
        job_type = registry.get(job.name)
        if job_type is not None:
            try:
                self.queues.revoke(job_type, job.task_id)
            except Exception:
                # Our record already says revoked, and the tracker refuses to start it.
                log.warning("could not revoke the task in the queue", job_id=job.id)
        return job

    def retry(self, actor: Actor, job_id: int) -> Job:
        with self.db.write_session() as session:
            job = service.get_job(session, job_id)
            job_type = registry.get(job.name)
            if job_type is None:
                raise Problem(
                    ProblemType.CONFLICT, f"job type {job.name!r} is no longer known here"
                )
            job = service.retry(session, actor, job, job_type)
        self._put(job)
        return job

    def _put(self, job: Job) -> None:
        """Queue a committed job. If the queue refuses, the record says so."""
        job_type = registry.get(job.name)
        assert job_type is not None
        try:
            run_at = job.run_at if job.status == JobStatus.SCHEDULED else None
            self.queues.enqueue(job_type, job.task_id, job.args, run_at=run_at)
        except Exception as exc:
            log.exception("could not queue job", job_id=job.id)
            with self.db.write_session() as session:
                found = service.get_job(session, job.id)
                found.status = JobStatus.FAILED.value
                found.error = f"the queue refused it: {exc!r}"
                service.add_event(found, JobStatus.FAILED, "the queue refused it")
            raise Problem(
                ProblemType.UNAVAILABLE, "the job queue is unavailable; the job was not queued"
            ) from exc

    def close(self) -> None:
        self.queues.close()
