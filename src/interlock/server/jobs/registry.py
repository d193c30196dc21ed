"""Job types: what a job is called, what it runs, and how it is retried and scheduled.

Job types are declared once, at import time, with `@job(...)`; every queue backend (SQLite,
Redis, PostgreSQL) registers the same ones with Huey when it is built. A job function takes a
`JobContext` and keyword arguments made of JSON values, and returns a JSON value.
"""

from __future__ import annotations

import importlib
import inspect
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cronsim import CronSim, CronSimError

DEFAULT_QUEUE = "default"
# Job type names: dotted, like "interlock.sweep_login_sessions". The API checks names against
# it before they reach a query.
NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a running job may need besides its arguments."""

    db: Any  # interlock.server.db.engine.Database; Any keeps this module import-light
    task_id: str
    attempt: int
    settings: Any


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with a cap and jitter (Huey's own has neither).

    Attempt n (1-based) waits base * factor**(n-1) seconds, at most `cap`, then "equal
    jitter": a uniform draw from the upper half of that, so retries of jobs that failed
    together spread out but never come back sooner than half the nominal wait.
    """

    base: float = 2.0
    factor: float = 2.0
    cap: float = 600.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        nominal = min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        draw = (rng or random).uniform(0.5, 1.0)
        return nominal * draw


@dataclass(frozen=True, slots=True)
class JobType:
    name: str
    func: Callable[..., Any]
    retries: int = 0
    backoff: Backoff = field(default_factory=Backoff)
    # Running it twice changes nothing twice: a job lost with a dead worker is run again.
    idempotent: bool = True
    # Operators may enqueue it by name through the API.
    enqueueable: bool = False
    cron: str | None = None
    queue: str = DEFAULT_QUEUE
    description: str = ""

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def bind(self, args: dict[str, Any]) -> None:
        """Raise TypeError unless `args` fit the job function's keyword parameters."""
        signature = inspect.signature(self.func)
        parameters = list(signature.parameters.values())[1:]  # the first is the context
        signature.replace(parameters=parameters).bind(**args)

    def next_run(self, after: datetime) -> datetime | None:
        if self.cron is None:
            return None
        return next(CronSim(self.cron, after.astimezone(UTC)))

    def due_at(self, minute: datetime) -> bool:
        """Whether the cron expression fires at this (whole, UTC) minute."""
        if self.cron is None:
            return False
        minute = minute.replace(second=0, microsecond=0, tzinfo=UTC)
        return next(CronSim(self.cron, minute - timedelta(seconds=1))) == minute


_TYPES: dict[str, JobType] = {}


def job(
    name: str,
    *,
    retries: int = 0,
    backoff: Backoff | None = None,
    idempotent: bool = True,
    enqueueable: bool = False,
    cron: str | None = None,
    queue: str = DEFAULT_QUEUE,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a job type. Names are global and stable: queued messages refer to them."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        if not re.match(NAME_PATTERN, name) or not re.match(r"^[A-Za-z0-9_]{1,40}$", queue):
            raise ValueError(f"job type {name!r}: names are letters, digits and _ . : -")
        if name in _TYPES and _TYPES[name].func is not func:
            raise ValueError(f"job type {name!r} is already registered")
        if cron is not None:
            try:
                CronSim(cron, datetime.now(UTC))
            except CronSimError as exc:
                raise ValueError(f"job type {name!r}: bad cron expression {cron!r}") from exc
        _TYPES[name] = JobType(
            name=name,
            func=func,
            retries=retries,
            backoff=backoff or Backoff(),
            idempotent=idempotent,
            enqueueable=enqueueable,
            cron=cron,
            queue=queue,
            description=(inspect.getdoc(func) or "").split("\n\n")[0],
        )
        return func

    return register


def get(name: str) -> JobType | None:
    return _TYPES.get(name)


def all_types() -> list[JobType]:
    return sorted(_TYPES.values(), key=lambda t: t.name)


def load(extra_modules: str = "") -> None:
    """Import the built-in job types and any listed in INTERLOCK_JOBS_IMPORTS."""
    from interlock.server.settings import SettingsError

    importlib.import_module("interlock.server.jobs.builtin")
    for module in filter(None, (m.strip() for m in extra_modules.split(","))):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SettingsError(
                f"invalid setting INTERLOCK_JOBS_IMPORTS: cannot import {module!r} ({exc})"
            ) from None
