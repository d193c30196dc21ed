"""Rate limits with the `limits` library: in memory on one server, in Redis when shared."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from interlock.server.problems import Problem, ProblemType

log = structlog.get_logger("interlock.ratelimit")


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
    def __init__(self, redis_url: str | None = None) -> None:
        storage: Storage = MemoryStorage()
        if redis_url:
            shared = storage_from_string(redis_url)
            assert isinstance(shared, Storage)
            storage = shared
        self._limiter = MovingWindowRateLimiter(storage)
        self._storage = storage

    def hit(self, rule: str | None, *identifiers: str, cost: int = 1) -> Verdict | None:
        """Count one hit; None when the rule is off. Fails open if the store is unreachable:
        a Redis outage must not take the API down with it."""
        if rule is None:
            return None
        item = parse(rule)
        try:
            allowed = self._limiter.hit(item, *identifiers, cost=cost)
            stats = self._limiter.get_window_stats(item, *identifiers)
        except Exception as exc:
            log.warning("rate limit store unavailable; allowing", error=str(exc))
            return None
        return _verdict(item, allowed, stats.reset_time, stats.remaining)

    def test(self, rule: str | None, *identifiers: str) -> Verdict | None:
        """Whether one more hit would be allowed, without counting it."""
        if rule is None:
            return None
        item = parse(rule)
        try:
            allowed = self._limiter.test(item, *identifiers)
            stats = self._limiter.get_window_stats(item, *identifiers)
        except Exception as exc:
            log.warning("rate limit store unavailable; allowing", error=str(exc))
            return None
        return _verdict(item, allowed, stats.reset_time, stats.remaining)

    def clear(self, rule: str | None, *identifiers: str) -> None:
        if rule is not None:
            try:
                self._limiter.clear(parse(rule), *identifiers)
            except Exception as exc:
                log.warning("rate limit store unavailable", error=str(exc))


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
