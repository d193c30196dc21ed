from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from interlock.server.jobs.models import JobStatus, WorkerStatus
from interlock.server.jobs.registry import NAME_PATTERN


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="A registered job type.")
    args: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the job (JSON values)."
    )
    delay_seconds: float | None = Field(
        None, gt=0, le=30 * 24 * 3600, description="Run it this long from now (scheduled)."
    )


class JobEventOut(BaseModel):
    status: JobStatus
    at: datetime
    attempt: int
    worker_id: str | None
    detail: str | None


class JobOut(BaseModel):
    id: int
    name: str
    status: JobStatus
    queue: str
    args: dict[str, Any]
    periodic: bool
    attempts: int
    max_attempts: int
    result: Any = None
    error: str | None
    worker_id: str | None
    enqueued_at: datetime
    run_at: datetime | None = Field(description="When a scheduled or retrying job runs next.")
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None = Field(description="Of the last attempt.")


class JobDetail(JobOut):
    history: list[JobEventOut]


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class QueueDepth(BaseModel):
    queue: str
    ready: int
    scheduled: int


class JobStats(BaseModel):
    by_status: dict[str, int]
    by_name: dict[str, dict[str, int]]
    window_minutes: int
    finished: int = Field(description="Jobs that succeeded or failed within the window.")
    succeeded: int
    failed: int
    throughput_per_minute: float
    failure_rate: float | None = Field(description="failed / finished; null when none finished.")
    queues: list[QueueDepth] | None = Field(description="Null when the queue is unreachable.")
    backend: str


class WorkerOut(BaseModel):
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    embedded: bool
    status: WorkerStatus
    started_at: datetime
    last_heartbeat_at: datetime
    stopped_at: datetime | None
    running: int = Field(description="Jobs it is running now, by our records.")


class WorkerList(BaseModel):
    items: list[WorkerOut]


class ScheduleEntry(BaseModel):
    name: str
    cron: str
    queue: str
    description: str
    next_run_at: datetime
    last_job_id: int | None
    last_status: JobStatus | None
    last_enqueued_at: datetime | None


class Schedule(BaseModel):
    items: list[ScheduleEntry]


class JobTypeOut(BaseModel):
    name: str
    description: str
    queue: str
    retries: int
    idempotent: bool
    enqueueable: bool
    cron: str | None
