"""Feeds our `jobs` table from Huey's hooks and signals, and applies our retry backoff.

Huey calls, for one attempt: the ENQUEUED signal (or SCHEDULED, for a task with an eta),
then at execution the pre-execute hook, the task, the post-execute hook, and on an error
with retries left the RETRYING signal, just before it reschedules the task. We use:

- pre-execute: the attempt starts (our row goes to `running`, attempts + 1), unless our row
  says the job was cancelled or has already finished: then CancelExecution, and it does not
  run. Our database, not Huey's revoke flag, is the arbiter between a cancel and a start:
  both take the write lock, so exactly one of them wins.
- post-execute: the attempt's outcome, result or error, and its duration.
- RETRYING: sets the task's retry_delay to our backoff (exponential, capped, jittered); Huey
  then schedules the retry with it. Huey's own backoff would multiply without cap or jitter.
"""

from __future__ import annotations

import time
import traceback
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from huey import Huey, signals
from huey.api import Task
from huey.exceptions import CancelExecution

from interlock.server.db.engine import Database
from interlock.server.jobs import registry, service
from interlock.server.jobs.metrics import observe_attempt
from interlock.server.jobs.models import JobStatus
from interlock.server.jobs.queue import ATTEMPT_ATTRIBUTE, JobQueues
from interlock.server.jobs.registry import JobType

log = structlog.get_logger("interlock.jobs")

STARTED_ATTRIBUTE = "_interlock_started"
# A task whose start could not be recorded (database unreachable) is tried again this late.
UNRECORDED_RETRY = timedelta(seconds=5)


class Tracker:
    def __init__(self, db: Database, queues: JobQueues) -> None:
        self.db = db
        self.queues = queues
        self.worker_id = "unregistered"
        queues.on_build.append(self.attach)
        for huey in queues.built():
            self.attach(huey)

    def attach(self, huey: Huey) -> None:
        huey.pre_execute(name="interlock.track")(self._pre_execute)
        huey.post_execute(name="interlock.track")(self._post_execute)
        huey.signal(signals.SIGNAL_ENQUEUED)(self._waiting)
        huey.signal(signals.SIGNAL_SCHEDULED)(self._waiting)
        huey.signal(signals.SIGNAL_RETRYING)(self._retrying)
        huey.signal(signals.SIGNAL_REVOKED, signals.SIGNAL_EXPIRED)(self._revoked)

    def _waiting(self, signal: str, task: Task) -> None:
        job_type = registry.get(task.name)
        if job_type is None:
            return
        status = JobStatus.SCHEDULED if signal == signals.SIGNAL_SCHEDULED else JobStatus.ENQUEUED
        with self.db.read_session() as session:
            job = service.find_by_task(session, task.id)
            if job is not None and job.status == status:
                return  # recorded already (the API writes the row before queueing)
        with self.db.write_session() as session:
            service.mark_waiting(
                session, job_type, task.id, dict(task.kwargs), status, _aware(task.eta)
            )

    def _pre_execute(self, task: Task) -> None:
        job_type = registry.get(task.name)
        if job_type is None:
            raise CancelExecution(f"unknown job type {task.name!r}", retry=False)
        try:
            with self.db.write_session() as session:
                job = service.start_attempt(
                    session, job_type, task.id, dict(task.kwargs), self.worker_id
                )
                attempt = job.attempts if job is not None else 0
        except Exception:
            log.exception("job start not recorded; trying again later", task_id=task.id)
            self._reschedule(task)
            raise CancelExecution("start not recorded", retry=False) from None
        if job is None:
            raise CancelExecution("cancelled or already finished", retry=False)
        setattr(task, ATTEMPT_ATTRIBUTE, attempt)
        setattr(task, STARTED_ATTRIBUTE, time.monotonic())

    def _reschedule(self, task: Task) -> None:
        job_type = registry.get(task.name)
        if job_type is None:
            return
        task.eta = datetime.now(UTC).replace(tzinfo=None) + UNRECORDED_RETRY
        self.queues.huey(job_type.queue).add_schedule(task)

    def _post_execute(self, task: Task, value: Any, exception: BaseException | None) -> None:
        started = getattr(task, STARTED_ATTRIBUTE, None)
        duration = time.monotonic() - started if started is not None else None
        error = None
        if exception is not None:
            error = "".join(
                traceback.format_exception(type(exception), exception, exception.__traceback__)
            )
        will_retry = exception is not None and bool(task.retries)
        with self.db.write_session() as session:
            service.finish_attempt(
                session,
                task.id,
                result=value,
                error=error,
                will_retry=will_retry,
                duration=duration,
            )
        outcome = "succeeded" if exception is None else "retrying" if will_retry else "failed"
        if duration is not None:
            observe_attempt(task.name, outcome, duration)
        if exception is not None:
            log.warning("job attempt failed", job=task.name, task_id=task.id, error=repr(exception))

    def _retrying(self, signal: str, task: Task) -> None:
        job_type: JobType | None = registry.get(task.name)
        if job_type is None:
            return
        attempt = getattr(task, ATTEMPT_ATTRIBUTE, 1)
        task.retry_delay = job_type.backoff.delay(attempt)
        task.retry_backoff = 0  # ours already grew it; Huey must not multiply it again

    def _revoked(self, signal: str, task: Task) -> None:
        with self.db.write_session() as session:
            service.mark_revoked(session, task.id, f"{signal} in the queue")


def _aware(value: datetime | None) -> datetime | None:
    """Huey keeps naive UTC times."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
