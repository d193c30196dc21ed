"""Job types for the tests; worker processes started by tests import them too
(INTERLOCK_JOBS_IMPORTS=tests.server.jobs.sample_jobs)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from interlock.server.jobs.registry import Backoff, JobContext, job

TINY_BACKOFF = Backoff(base=0.05, factor=2.0, cap=0.2)


@job("test.flaky", enqueueable=True, retries=3, backoff=TINY_BACKOFF)
def flaky(ctx: JobContext, fail_attempts: int = 0) -> dict[str, Any]:
    """Fails its first `fail_attempts` attempts."""
    if ctx.attempt <= fail_attempts:
        raise RuntimeError(f"attempt {ctx.attempt} fails")
    return {"attempt": ctx.attempt}


@job("test.gate", enqueueable=True, retries=0)
def gate(ctx: JobContext, path: str, started: str = "", timeout: float = 20.0) -> str:
    """Marks `started` (a file), then waits until the file `path` exists."""
    if started:
        Path(started).write_text(ctx.task_id)
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)
    return "opened"


@job("test.gate_once", enqueueable=True, retries=0, idempotent=False)
def gate_once(ctx: JobContext, path: str, started: str = "", timeout: float = 20.0) -> str:
    """Like test.gate, but not idempotent: a lost run must not be repeated."""
    return gate(ctx, path, started, timeout)  # type: ignore[no-any-return]


@job("test.hidden")
def hidden(ctx: JobContext) -> None:
    """Registered, but not enqueueable through the API."""


@job("test.elsewhere", enqueueable=True, queue="side")
def elsewhere(ctx: JobContext) -> str:
    """A job on its own queue, for workers started with --queue."""
    return "side"
