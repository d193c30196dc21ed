"""Runs jobs: N job threads, a scheduler thread and a heartbeat thread, no signal handling.

The same runner serves `interlock serve` (started and stopped by the app's lifespan) and
`interlock worker` (whose main thread owns SIGTERM/SIGINT and calls `stop`). Huey's own
Consumer is not used: it installs SIGINT/SIGTERM/SIGHUP handlers when started, which fails
outside the main thread and would replace the ASGI server's shutdown handling inside it.
The runner drives the same Huey calls the Consumer does: `dequeue` and `execute` for tasks,
`read_schedule` for tasks whose time has come; periodic jobs are started from our cron
schedule, claimed in the main database so that one node starts each run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import structlog
from huey import Huey
from huey.api import Task

from interlock.server.jobs import registry, service, workers
from interlock.server.jobs.system import JobSystem

log = structlog.get_logger("interlock.jobs")

MIN_POLL_SECONDS = 0.02
SCHEDULER_MAX_SECONDS = 1.0


class Runner:
    def __init__(
        self,
        system: JobSystem,
        *,
        concurrency: int,
        queues: Sequence[str] | None = None,
        embedded: bool = False,
        burst: bool = False,
    ) -> None:
        self.system = system
        self.settings = system.settings
        self.concurrency = concurrency
        self.queue_names = (
            list(queues) if queues else sorted({t.queue for t in registry.all_types()})
        )
        self.embedded = embedded
        self.burst = burst
        self.worker_id = workers.new_worker_id()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._job_threads: list[threading.Thread] = []
        self._last_minute: datetime | None = None
        self._burst_lock = threading.Lock()

    @property
    def poll_seconds(self) -> float:
        return float(self.settings.jobs_poll_seconds)

    def start(self) -> None:
        self.system.tracker.worker_id = self.worker_id
        with self.system.db.write_session() as session:
            workers.register(
                session, self.worker_id, self.queue_names, self.concurrency, self.embedded
            )
        hueys = [self.system.queues.huey(q) for q in self.queue_names]  # build them up front
        for number in range(self.concurrency):
            thread = threading.Thread(
                target=self._work, args=(hueys,), name=f"interlock-job-{number}", daemon=True
            )
            self._job_threads.append(thread)
        self._threads = [
            *self._job_threads,
            threading.Thread(target=self._schedule, name="interlock-job-scheduler", daemon=True),
            threading.Thread(target=self._heartbeat, name="interlock-job-heartbeat", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        log.info(
            "job runner started",
            worker=self.worker_id,
            backend=self.system.queues.backend,
            queues=self.queue_names,
            concurrency=self.concurrency,
        )

    def request_stop(self) -> None:
        """Stop taking new jobs; jobs already running finish. Safe from a signal handler."""
        self._stop.set()
        self.system.queues.wake.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Until every job thread has ended (stop requested, or a burst drained the queue)."""
        end = None if timeout is None else time.monotonic() + timeout
        for thread in self._job_threads:
            # Short joins keep the main thread responsive to signals while it waits.
            while thread.is_alive():
                left = 0.2 if end is None else min(0.2, end - time.monotonic())
                if left <= 0:
                    break
                thread.join(left)
        return not any(t.is_alive() for t in self._job_threads)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop, waiting up to `timeout` seconds (None: as long as it takes) for running jobs.

        Returns False if some were still running: they stay `running` in our records, and the
        reaper of a live worker (or of the next start) runs them again if idempotent.
        """
        self.request_stop()
        finished = self.wait(timeout)
        for thread in self._threads:
            if thread not in self._job_threads:
                thread.join(timeout=5)
        try:
            with self.system.db.write_session() as session:
                workers.stop(session, self.worker_id)
        except Exception:
            log.exception("could not record the job runner's stop")
        if not finished:
            log.warning("job runner stopped with jobs still running", worker=self.worker_id)
        log.info("job runner stopped", worker=self.worker_id)
        return finished

    # Job threads.

    def _work(self, hueys: list[Huey]) -> None:
        delay = MIN_POLL_SECONDS
        while not self._stop.is_set():
            found = self._dequeue(hueys)
            if found is not None:
                huey, task = found
                delay = MIN_POLL_SECONDS
                try:
                    huey.execute(task)
                except Exception:
                    log.exception("job execution failed outside the job", task_id=task.id)
                continue
            if self.burst and self._drained(hueys):
                return
            self.system.queues.wake.wait(delay)
            self.system.queues.wake.clear()
            delay = min(delay * 2, self.poll_seconds)

    def _dequeue(self, hueys: list[Huey]) -> tuple[Huey, Task] | None:
        for huey in hueys:
            try:
                task = huey.dequeue()
            except Exception:
                log.exception("could not read the job queue", queue=huey.name)
                continue
            if task is not None:
                return huey, task
        return None

    def _drained(self, hueys: list[Huey]) -> bool:
        """Burst mode: nothing ready now, once tasks whose time has come are queued."""
        with self._burst_lock:
            self._promote_due(hueys)
            return all(huey.pending_count() == 0 for huey in hueys)

    # Scheduler thread.

    def _schedule(self) -> None:
        hueys = [self.system.queues.huey(q) for q in self.queue_names]
        while not self._stop.is_set():
            try:
                self._promote_due(hueys)
                if self.settings.jobs_periodic:
                    self.start_periodic(datetime.now(UTC))
            except Exception:
                log.exception("job scheduler pass failed")
            self._stop.wait(min(self.poll_seconds, SCHEDULER_MAX_SECONDS))

    def _promote_due(self, hueys: list[Huey]) -> None:
        moved = False
        for huey in hueys:
            for task in huey.read_schedule():
                huey.enqueue(task)
                moved = True
        if moved:
            self.system.queues.wake.set()

    def start_periodic(self, now: datetime) -> list[int]:
        """Once per minute: claim and queue the periodic jobs due this minute; their ids."""
        minute = now.replace(second=0, microsecond=0)
        if self._last_minute == minute:
            return []
        self._last_minute = minute
        started = []
        for job_type in registry.all_types():
            if job_type.queue not in self.queue_names or not job_type.due_at(minute):
                continue
            with self.system.db.write_session() as session:
                job = service.claim_periodic(session, job_type, minute)
            if job is not None:
                self.system.queues.enqueue(job_type, job.task_id, {})
                started.append(job.id)
        return started

    # Heartbeat thread.

    def _heartbeat(self) -> None:
        interval = float(self.settings.jobs_heartbeat_seconds)
        timeout = timedelta(seconds=float(self.settings.jobs_worker_timeout_seconds))
        while True:
            try:
                with self.system.db.write_session() as session:
                    workers.heartbeat(session, self.worker_id)
                    requeue = workers.reap(session, timeout, reaper=self.worker_id)
                for lost in requeue:
                    job_type = registry.get(lost.name)
                    if job_type is not None:
                        self.system.queues.enqueue(job_type, lost.task_id, dict(lost.args))
                        log.warning("requeued a job of a lost worker", task_id=lost.task_id)
            except Exception:
                log.exception("job heartbeat failed")
            if self._stop.wait(interval):
                return
