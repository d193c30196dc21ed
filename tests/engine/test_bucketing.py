"""Bucketing: stability, monotonic percentages, uniformity and the peers' exact vectors."""

from __future__ import annotations

import mmh3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.engine.bucketing import (
    BUCKETS,
    bucket,
    bucket_text,
    cumulative_bounds,
    flagd_v2_point,
    pick,
    salt_prefix,
    unleash_strategy_bucket,
    unleash_variant_target,
)

keys = st.text(min_size=0, max_size=40)
salts = st.text(min_size=1, max_size=30)


@given(salts, keys)
def test_a_key_always_lands_in_the_same_bucket(salt: str, key: str) -> None:
    first = bucket(salt_prefix(salt), key)
    assert first == bucket(salt_prefix(salt), key)
    assert 0 <= first < BUCKETS


@given(salts, keys, st.integers(0, BUCKETS), st.integers(0, BUCKETS))
def test_raising_the_percentage_never_removes_a_user(
    salt: str, key: str, low: int, high: int
) -> None:
    low, high = sorted((low, high))
    point = bucket(salt_prefix(salt), key)
    if point < low:
        assert point < high


@given(salts, keys, st.integers(0, BUCKETS))
def test_raising_the_first_weight_of_a_split_only_moves_users_into_it(
    salt: str, key: str, extra: int
) -> None:
    first = 25_000
    raised = min(first + extra, BUCKETS)
    point = bucket(salt_prefix(salt), key)
    before = pick(cumulative_bounds([first, BUCKETS - first]), point)
    after = pick(cumulative_bounds([raised, BUCKETS - raised]), point)
    assert before == after or (before, after) == (1, 0)


def test_the_hashed_input_is_the_utf8_of_salt_dot_value() -> None:
    expected = mmh3.hash("Feature.UTF-8.Hellø_Wørld.user-1".encode(), 0, signed=False)
    assert bucket(salt_prefix("Feature.UTF-8.Hellø_Wørld"), "user-1") == (expected * BUCKETS) >> 32


# The normal distribution's 0.999 quantile; with the Wilson-Hilferty approximation it gives
# chi-square's 0.999 quantile to within 0.1 at hundreds of degrees of freedom.
Z_0_999 = 3.090232


def chi2_critical_0_999(df: int) -> float:
    try:
        from scipy.stats import chi2  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        c = 2 / (9 * df)
        return float(df * (1 - c + Z_0_999 * c**0.5) ** 3)
    return float(chi2.ppf(0.999, df))


def test_buckets_are_uniform_over_a_fixed_set_of_100k_keys() -> None:
    bins = 1000
    counts = [0] * bins
    prefix = salt_prefix("uniformity")
    for i in range(100_000):
        counts[bucket(prefix, f"user-{i}") * bins // BUCKETS] += 1
    expected = 100_000 / bins
    statistic = sum((count - expected) ** 2 / expected for count in counts)
    critical = chi2_critical_0_999(bins - 1)
    assert 1140 < critical < 1146
    assert statistic < critical


def test_different_salts_bucket_independently() -> None:
    a = [bucket(salt_prefix("a"), f"user-{i}") < BUCKETS // 2 for i in range(10_000)]
    b = [bucket(salt_prefix("b"), f"user-{i}") < BUCKETS // 2 for i in range(10_000)]
    agreement = sum(x == y for x, y in zip(a, b, strict=True))
    assert 4_700 < agreement < 5_300


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("user-1", "user-1"),
        (42, "42"),
        ("", ""),
        (True, None),
        (1.5, None),
        (None, None),
        (["a"], None),
    ],
)
def test_only_strings_and_integers_are_bucketable(value: object, text: str | None) -> None:
    assert bucket_text(value) == text


@pytest.mark.parametrize(
    ("weights", "bounds"),
    [([25, 75], (25, 100)), ([0, 100, 0], (0, 100, 100)), ([], ())],
)
def test_cumulative_bounds_add_up(weights: list[int], bounds: tuple[int, ...]) -> None:
    assert cumulative_bounds(weights) == bounds


def test_negative_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        cumulative_bounds([-1, 2])


def test_a_zero_weight_variation_is_never_picked() -> None:
    bounds = cumulative_bounds([0, 100, 0])
    assert {pick(bounds, point) for point in range(100)} == {1}


# Values from Unleash's Node SDK tests (normalizedValue) and client specification.
@pytest.mark.parametrize(
    ("group", "value", "expected"), [("gr1", "123", 73), ("groupX", "999", 25)]
)
def test_unleash_strategy_bucketing_matches_unleash(group: str, value: str, expected: int) -> None:
    assert unleash_strategy_bucket(group, value) == expected


def test_unleash_variant_bucketing_uses_its_own_seed() -> None:
    raw = mmh3.hash("feature:user-1", 86028157, signed=False)
    assert unleash_variant_target("feature", "user-1", 1000) == raw % 1000 + 1
    assert all(1 <= unleash_variant_target("f", f"u{i}", 3) <= 3 for i in range(100))


# flagd's edge vectors hash to 0, 1, 2^31-1, 2^31 and 2^32-1 exactly (see the conformance
# README); under v2's multiply-shift they are the first and last points and the midpoint.
@pytest.mark.parametrize(
    ("text", "raw", "point_of_2", "point_of_100"),
    [
        ("ejOoVL", 0, 0, 0),
        ("bY9fO-", 1, 0, 0),
        ("SI7p-", 2**31 - 1, 0, 49),
        ("6LvT0", 2**31, 1, 50),
        ("ceQdGm", 2**32 - 1, 1, 99),
    ],
)
def test_flagd_v2_edge_vectors_map_to_the_ends_and_middle(
    text: str, raw: int, point_of_2: int, point_of_100: int
) -> None:
    assert mmh3.hash(text, 0, signed=False) == raw
    assert flagd_v2_point(text, 2) == point_of_2
    assert flagd_v2_point(text, 100) == point_of_100
    assert flagd_v2_point(text, 2**31 - 1) == (raw * (2**31 - 1)) >> 32
