"""Rate limits with the `limits` library: in memory on one server, in Redis when shared.

A rate limit protects the service; it must never be the reason the service is down. When
the Redis store does not answer, requests are allowed (fail open), a warning is logged, and
the store is left alone for a few seconds so each request does not wait on it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from interlock.server.problems import Problem, ProblemType

log = structlog.get_logger("interlock.ratelimit")

T = TypeVar("T")

# Keys in Redis start with this, so several instances (or test runs) can share one Redis.
DEFAULT_KEY_PREFIX = "interlock"
# A Redis that does not answer within this long counts as down for this request...
STORE_TIMEOUT_SECONDS = 0.5
# ...and is not asked again for this long.
STORE_RETRY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        """IETF RateLimit header fields, plus Retry-After when refused."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(self.reset_seconds, 1))
        return headers


class RateLimiter:
    def __init__(self, redis_url: str | None = None, key_prefix: str | None = None) -> None:
        storage: Storage = MemoryStorage()
        if redis_url:
            shared = storage_from_string(
                redis_url,
                key_prefix=key_prefix or DEFAULT_KEY_PREFIX,
                socket_connect_timeout=STORE_TIMEOUT_SECONDS,
                socket_timeout=STORE_TIMEOUT_SECONDS,
            )
            assert isinstance(shared, Storage)
            storage = shared
        self._limiter = MovingWindowRateLimiter(storage)
        self._storage = storage
        self._lock = threading.Lock()
        self._down_until = 0.0

    def hit(self, rule: str | None, *identifiers: str, cost: int = 1) -> Verdict | None:
        """Count one hit; None when the rule is off or the store is unreachable."""
        if rule is None:
            return None
        item = parse(rule)

        def count() -> Verdict:
            allowed = self._limiter.hit(item, *identifiers, cost=cost)
            stats = self._limiter.get_window_stats(item, *identifiers)
            return _verdict(item, allowed, stats.reset_time, stats.remaining)

        return self._guarded(count)

    def test(self, rule: str | None, *identifiers: str) -> Verdict | None:
        """Whether one more hit would be allowed, without counting it."""
        if rule is None:
            return None
        item = parse(rule)

        def peek() -> Verdict:
            allowed = self._limiter.test(item, *identifiers)
            stats = self._limiter.get_window_stats(item, *identifiers)
            return _verdict(item, allowed, stats.reset_time, stats.remaining)

        return self._guarded(peek)

    def clear(self, rule: str | None, *identifiers: str) -> None:
        if rule is not None:
            self._guarded(lambda: self._limiter.clear(parse(rule), *identifiers))

    def _guarded(self, call: Callable[[], T]) -> T | None:
        if time.monotonic() < self._down_until:
            return None
        try:
            return call()
        except Exception as exc:
            with self._lock:
                first = time.monotonic() >= self._down_until
                self._down_until = time.monotonic() + STORE_RETRY_SECONDS
            if first:
                log.warning(
                    "rate limit store unreachable; allowing requests without limits",
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_seconds=STORE_RETRY_SECONDS,
                )
            return None


def _verdict(item: RateLimitItem, allowed: bool, reset_time: float, remaining: int) -> Verdict:
    reset = max(0, math.ceil(reset_time - time.time()))
    return Verdict(allowed, item.amount, max(remaining, 0), reset)


def enforce(verdict: Verdict | None, what: str) -> None:
    if verdict is not None and not verdict.allowed:
        raise Problem(
            ProblemType.RATE_LIMITED,
            f"too many requests {what}; retry in {max(verdict.reset_seconds, 1)} s",
            headers=verdict.headers(),
        )
