"""The Huey queues, one per queue name, on the backend the settings choose.

- SQLite main database (embedded): SqliteHuey on its own file, `jobs.db` in the data
  directory, so queue traffic never takes the main database's write lock.
- INTERLOCK_REDIS_URL set: RedisHuey.
- PostgreSQL main database without Redis: PostgresHuey on the same database (its tables are
  `jobs_queue_*`, created by Huey, not by our migrations: they hold only queue messages).

Huey keeps no results here (`results=False`): results, errors and history live in our own
`jobs` table, written by the tracker (tracking.py).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from huey import Huey, PostgresHuey, RedisHuey, SqliteHuey
from huey.api import Task
from sqlalchemy.engine import make_url

from interlock.server.db.engine import Database
from interlock.server.jobs import registry
from interlock.server.jobs.registry import JobContext, JobType
from interlock.server.settings import Settings

JOBS_DATABASE_FILE = "jobs.db"
POSTGRES_TABLE_PREFIX = "jobs_queue"
# Registry keys are "<module>.<name>": one fixed module keeps them independent of where a
# job function happens to be defined.
TASK_MODULE = "interlock.jobs"
# Set on a task by the tracker when its attempt starts: the attempt number the job sees.
ATTEMPT_ATTRIBUTE = "_interlock_attempt"


def backend_name(settings: Settings) -> str:
    if settings.redis_url:
        return "redis"
    return "sqlite" if settings.embedded else "postgresql"


class JobQueues:
    """Huey instances by queue name, built on first use, with every job type registered."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.backend = backend_name(settings)
        self._hueys: dict[str, Huey] = {}
        self._lock = threading.Lock()
        # Set when this process enqueues, so an in-process runner looks at once.
        self.wake = threading.Event()
        self.on_build: list[Any] = []  # callables(huey) run on each new Huey (the tracker)
        registry.load(settings.jobs_imports)

    def huey(self, queue: str) -> Huey:
        with self._lock:
            found = self._hueys.get(queue)
            if found is None:
                found = self._hueys[queue] = self._build(queue)
            return found

    def built(self) -> list[Huey]:
        with self._lock:
            return list(self._hueys.values())

    def _build(self, queue: str) -> Huey:
        name = f"{self.settings.jobs_namespace}_{queue}"
        huey: Huey
        if self.backend == "redis":
            huey = RedisHuey(name, results=False, url=self.settings.redis_url, blocking=False)
        elif self.backend == "sqlite":
            path = self.settings.data_dir / JOBS_DATABASE_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            # fsync: an enqueue the API acknowledged survives a power cut, like the main db.
            huey = SqliteHuey(name, results=False, filename=str(path), fsync=True, timeout=10)
        else:
            huey = self._postgres_huey(name)
        for job_type in registry.all_types():
            if job_type.queue == queue:
                _register(huey, job_type, self)
        for hook in self.on_build:
            hook(huey)
        return huey

    def _postgres_huey(self, name: str) -> Huey:
        url = make_url(self.settings.effective_database_url).set(drivername="postgresql")
        for attempt in range(3):
            try:
                return PostgresHuey(
                    name,
                    results=False,
                    dsn=url.render_as_string(hide_password=False),
                    blocking=False,
                    table_prefix=POSTGRES_TABLE_PREFIX,
                )
            except psycopg.errors.UniqueViolation:
                # Two nodes creating the queue tables at the same moment: PostgreSQL's
                # CREATE TABLE IF NOT EXISTS can still collide; the second try finds them.
                if attempt == 2:
                    raise
                time.sleep(0.1)
        raise AssertionError("unreachable")

    def task(
        self,
        job_type: JobType,
        task_id: str,
        args: dict[str, Any],
        *,
        retries: int | None = None,
        eta: datetime | None = None,
    ) -> Task:
        huey = self.huey(job_type.queue)
        task_class = huey._registry.string_to_task(f"{TASK_MODULE}.{job_type.name}")
        task: Task = task_class(
            (),
            dict(args),
            id=task_id,
            eta=eta,
            retries=job_type.retries if retries is None else retries,
        )
        return task

    def enqueue(
        self,
        job_type: JobType,
        task_id: str,
        args: dict[str, Any],
        *,
        retries: int | None = None,
        run_at: datetime | None = None,
    ) -> None:
        """Queue the task now, or put it on the schedule for `run_at` (aware)."""
        huey = self.huey(job_type.queue)
        if run_at is None:
            huey.enqueue(self.task(job_type, task_id, args, retries=retries))
            self.wake.set()
            return
        # Huey keeps naive UTC times.
        eta = run_at.astimezone(UTC).replace(tzinfo=None)
        huey.add_schedule(self.task(job_type, task_id, args, retries=retries, eta=eta))

    def revoke(self, job_type: JobType, task_id: str) -> None:
        # revoke_once: the first look at the task (when a worker dequeues it) consumes the
        # flag, so revocations do not pile up in the queue's store.
        self.huey(job_type.queue).revoke_by_id(task_id, revoke_once=True)

    def depth(self) -> dict[str, tuple[int, int]]:
        """Per queue name: (ready to run, scheduled for later)."""
        queues = sorted({t.queue for t in registry.all_types()})
        return {q: (self.huey(q).pending_count(), self.huey(q).scheduled_count()) for q in queues}

    def close(self) -> None:
        for huey in self.built():
            storage: Any = huey.storage
            close = getattr(storage, "close", None)
            if close is not None:
                close()


def _register(huey: Huey, job_type: JobType, queues: JobQueues) -> None:
    def run(task: Task, **kwargs: Any) -> Any:
        context = JobContext(
            db=queues.db,
            task_id=task.id,
            attempt=getattr(task, ATTEMPT_ATTRIBUTE, 1),
            settings=queues.settings,
        )
        return job_type.func(context, **kwargs)

    run.__module__ = TASK_MODULE
    # retry_delay > 0 makes Huey schedule a retry rather than queue it at once; the tracker
    # replaces it with our backoff (capped, jittered) just before Huey reschedules.
    huey.task(retries=job_type.retries, retry_delay=1, name=job_type.name, context=True)(run)
