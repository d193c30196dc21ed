"""Our record of every job and worker; Huey itself keeps only the queue."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from interlock.server.db.base import Base, utcnow


class JobStatus(StrEnum):
    ENQUEUED = "enqueued"  # in the queue, ready to run
    SCHEDULED = "scheduled"  # waiting for its time
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # retries used up, or not retryable
    RETRYING = "retrying"  # an attempt failed; the next one is scheduled
    REVOKED = "revoked"  # cancelled before it ran


WAITING = frozenset({JobStatus.ENQUEUED, JobStatus.SCHEDULED, JobStatus.RETRYING})
FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.REVOKED})


class WorkerStatus(StrEnum):
    ALIVE = "alive"
    STOPPED = "stopped"
    DEAD = "dead"


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Huey's task id: the key every signal and queue message carries.
    task_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    queue: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    periodic: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=1)
    result: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(100))
    enqueued_at: Mapped[datetime] = mapped_column(default=utcnow)
    run_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None] = mapped_column(index=True)
    duration_seconds: Mapped[float | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    events: Mapped[list[JobEvent]] = relationship(
        back_populates="job", order_by="JobEvent.id", cascade="all, delete-orphan"
    )


class JobEvent(Base):
    """One step of a job's life: its state history, oldest first."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    attempt: Mapped[int] = mapped_column(default=0)
    worker_id: Mapped[str | None] = mapped_column(String(100))
    detail: Mapped[str | None] = mapped_column(String(2000))

    job: Mapped[Job] = relationship(back_populates="events")


class JobWorker(Base):
    """A process (or the server's embedded runner) that runs jobs, with its heartbeat."""

    __tablename__ = "job_workers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    queues: Mapped[list[str]] = mapped_column(JSON)
    concurrency: Mapped[int]
    embedded: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None]
