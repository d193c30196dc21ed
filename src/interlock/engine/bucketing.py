"""Deterministic bucketing: which share of users a key falls into.

interlock's own mode hashes ``salt + "." + value`` (UTF-8) with MurmurHash3 x86 32-bit,
seed 0, read as an unsigned integer ``h``, and maps it to a bucket in ``0..99999`` as
``(h * 100000) >> 32``. The multiply-shift keeps every bucket within one hash value of the
same size (65536 or 65537 hashes each), so there is no modulo bias worth measuring. A user
is inside a percentage gate of ``p`` thousandths of a percent when ``bucket < p``, and a
split walks cumulative upper bounds, so raising a percentage (or the first variations'
weights) only ever adds users to it.

The ``.`` separator keeps ``("ab", "c")`` and ``("a", "bc")`` apart for salts that do not
themselves contain a dot; salts default to flag keys, which may contain dots, so choose a
custom salt without one when that matters.

The compatible modes reproduce peers' assignments exactly, so migrated flags keep their
users: Unleash's strategy (seed 0, ``h % 100 + 1`` over ``"groupId:value"``) and variant
(seed 86028157, ``h % total + 1``) bucketing, and flagd's fractional v2
(``(h * total) >> 32`` over the bucketing string). See ../shared/conformance/README.md.
"""

from __future__ import annotations

import enum
from bisect import bisect_right
from collections.abc import Iterable

import mmh3

#: Buckets of interlock's own mode: one per 0.001 % (weights are in the same unit).
BUCKETS = 100_000
UNLEASH_VARIANT_SEED = 86_028_157

_hash = mmh3.hash


class BucketingMode(enum.StrEnum):
    """How a split or percentage gate turns a key into a bucket."""

    INTERLOCK = "interlock"
    UNLEASH_STRATEGY = "unleash_strategy"
    UNLEASH_VARIANT = "unleash_variant"
    FLAGD_V2 = "flagd_v2"


def salt_prefix(salt: str) -> str:
    """The text every hashed value of this salt starts with; compute it once per split."""
    return salt + "."


def bucket(prefix: str, value: str) -> int:
    """interlock's bucket (0..99999) of ``value`` under a prefix from :func:`salt_prefix`."""
    return (_hash(prefix + value, 0, False) * BUCKETS) >> 32


def bucket_text(value: object) -> str | None:
    """The text a context value is bucketed on, or None when it cannot be bucketed.

    Strings are used as they are, integers in decimal, so ``42`` and ``"42"`` share a
    bucket. Booleans, floats, lists and None are not bucketable: a float's text is not
    stable across languages, and bucketing everyone with ``true`` together is never meant.
    """
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    return None


def cumulative_bounds(weights: Iterable[int]) -> tuple[int, ...]:
    """Cumulative upper bounds of ``weights`` (``[25, 75]`` → ``(25, 100)``)."""
    total = 0
    bounds: list[int] = []
    for weight in weights:
        if weight < 0:
            raise ValueError("weights must not be negative")
        total += weight
        bounds.append(total)
    return tuple(bounds)


def pick(bounds: tuple[int, ...], point: int) -> int:
    """Index of the first bound strictly above ``point`` (``point`` in ``0..bounds[-1]-1``).

    Zero-weight entries have a bound equal to their predecessor's and are never picked.
    """
    return bisect_right(bounds, point)


def unleash_strategy_bucket(group_id: str, value: str) -> int:
    """Unleash's normalized value (1..100) for rollout strategies.

    A strategy with percentage ``p`` is on iff ``p > 0 and bucket <= p``.
    """
    return _hash(f"{group_id}:{value}", 0, False) % 100 + 1


def unleash_variant_target(group_id: str, value: str, total: int) -> int:
    """Unleash's variant target (1..total); the variant is the first whose running sum ≥ it."""
    return _hash(f"{group_id}:{value}", UNLEASH_VARIANT_SEED, False) % total + 1


def flagd_v2_point(text: str, total: int) -> int:
    """flagd's fractional v2 point (0..total-1) of the bucketing string ``text``.

    Without a bucketing expression flagd's ``text`` is ``flagKey + targetingKey``.
    The variant is the first whose cumulative weight is strictly above the point.
    """
    return (_hash(text, 0, False) * total) >> 32
