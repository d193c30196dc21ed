"""Prometheus: job attempts and their duration (observed where they run), and at scrape time
the jobs by state and type and the queue depth (read from the database and the queue).

The scrape-time numbers come from the newest live job system in the process (the app's);
with `serve --workers N` (multiprocess mode) only the attempt histogram is collected.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import structlog
from prometheus_client import REGISTRY, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

log = structlog.get_logger("interlock.jobs")

ATTEMPT_DURATION = Histogram(
    "interlock_job_duration_seconds",
    "Duration of job attempts by job type and outcome.",
    ["name", "outcome"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
)


def observe_attempt(name: str, outcome: str, seconds: float) -> None:
    ATTEMPT_DURATION.labels(name, outcome).observe(seconds)


_current: weakref.ReferenceType[Any] | None = None


def publish(system: Any) -> None:
    """Make this job system (db + queues) the one /metrics reports on."""
    global _current
    _current = weakref.ref(system)


class JobsCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        system = _current() if _current is not None else None
        if system is None:
            return
        from interlock.server.jobs.models import Job

        jobs = GaugeMetricFamily(
            "interlock_jobs", "Jobs recorded, by state and job type.", labels=["status", "name"]
        )
        depth = GaugeMetricFamily(
            "interlock_job_queue_depth",
            "Tasks in the queue: ready to run, or scheduled for later.",
            labels=["queue", "kind"],
        )
        try:
            with system.db.read_session() as session:
                rows = session.execute(
                    select(Job.status, Job.name, func.count()).group_by(Job.status, Job.name)
                ).all()
            for status, name, count in rows:
                jobs.add_metric([status, name], count)
            for queue, (ready, scheduled) in system.queues.depth().items():
                depth.add_metric([queue, "ready"], ready)
                depth.add_metric([queue, "scheduled"], scheduled)
        except Exception:
            # A scrape must not fail because the queue's store is briefly unreachable.
            log.warning("job metrics unavailable", exc_info=True)
            return
        yield jobs
        yield depth


REGISTRY.register(JobsCollector())
