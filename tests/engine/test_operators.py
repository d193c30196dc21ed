"""Operators: one table per operator, then the shared rules (missing, lists, load errors)."""

from __future__ import annotations

import pytest

from interlock.engine.operators import (
    ClauseError,
    Operator,
    compile_operator,
    to_epoch,
    to_number,
)

O = Operator  # noqa: E741 - short, so the table reads as a table
Case = tuple[Operator, list[object], bool, object, bool]

# (operator, clause values, case sensitive, context value, expected)
CASES: list[Case] = [
    # in: exact, typed (a string never equals a number), case folding optional
    (O.IN, ["a", "b"], True, "a", True),
    (O.IN, ["a", "b"], True, "c", False),
    (O.IN, ["a"], True, "A", False),
    (O.IN, ["a"], False, "A", True),
    (O.IN, ["straße"], False, "STRASSE", True),
    (O.IN, ["10"], True, 10, False),
    (O.IN, [10], True, 10.0, True),
    (O.IN, [10], True, "10", False),
    (O.IN, [True], True, True, True),
    (O.IN, [1], True, True, False),
    (O.IN, [True], True, 1, False),
    (O.IN, [], True, "a", False),
    (O.IN, ["a"], True, None, False),
    (O.IN, ["a"], True, ["x", "a"], True),
    (O.IN, ["a"], True, [], False),
    (O.IN, ["a"], True, {"a": 1}, False),
    (O.IN, ["a", 3], False, ["x", 3], True),
    # starts_with / ends_with / contains: strings only
    (O.STARTS_WITH, ["foo", "bar"], True, "barbell", True),
    (O.STARTS_WITH, ["foo"], True, "Football", False),
    (O.STARTS_WITH, ["foo"], False, "Football", True),
    (O.STARTS_WITH, ["1"], True, 12, False),
    (O.STARTS_WITH, [""], True, "anything", True),
    (O.ENDS_WITH, ["@example.com"], True, "ann@example.com", True),
    (O.ENDS_WITH, ["@example.com"], True, "ann@EXAMPLE.com", False),
    (O.ENDS_WITH, ["@example.com"], False, "ann@EXAMPLE.com", True),
    (O.ENDS_WITH, ["x"], True, ["ab", "ax"], True),
    (O.CONTAINS, ["beta"], True, "pre-beta-2", True),
    (O.CONTAINS, ["beta"], True, "pre-BETA-2", False),
    (O.CONTAINS, ["beta"], False, "pre-BETA-2", True),
    (O.CONTAINS, ["1"], True, 212, False),
    # matches: RE2 search; POSIX classes and inline flags anywhere work
    (O.MATCHES, ["^a+b$"], True, "aaab", True),
    (O.MATCHES, ["a+b"], True, "xaabx", True),
    (O.MATCHES, ["^abc$"], True, "ABC", False),
    (O.MATCHES, ["^abc$"], False, "ABC", True),
    (O.MATCHES, ["^(?i)abc$"], True, "ABC", True),
    (O.MATCHES, ["^[[:alpha:]]+$"], True, "abc", True),
    (O.MATCHES, ["^[[:alpha:]]+$"], True, "ab1", False),
    (O.MATCHES, ["^1"], True, 12, False),
    (O.MATCHES, ["^x", "^y"], True, "yes", True),
    # numbers: numeric strings parsed, both sides
    (O.EQUALS, [12], True, 12.0, True),
    (O.EQUALS, ["12.0"], True, "12", True),
    (O.EQUALS, [12], True, 13, False),
    (O.EQUALS, [1, 2], True, 2, True),
    (O.EQUALS, [1], True, True, False),
    (O.EQUALS, [1], True, "one", False),
    (O.EQUALS, [1], True, "1_0", False),
    (O.EQUALS, [1], True, "nan", False),
    (O.LT, [10], True, 9.5, True),
    (O.LT, [10], True, 10, False),
    (O.LT, [10], True, "-1e3", True),
    (O.LT, [3, 5], True, 4, True),
    (O.LTE, [10], True, 10, True),
    (O.LTE, [10], True, 11, False),
    (O.GT, [10], True, 10.001, True),
    (O.GT, [10], True, 10, False),
    (O.GT, [10], True, [1, 20], True),
    (O.GTE, [10], True, "10", True),
    (O.GTE, [10], True, 9, False),
    # dates: RFC 3339 with an offset, or epoch seconds; strict comparisons
    (O.BEFORE, ["2026-01-01T00:00:00Z"], True, "2025-12-31T23:59:59Z", True),
    (O.BEFORE, ["2026-01-01T00:00:00Z"], True, "2026-01-01T00:00:00Z", False),
    (O.BEFORE, ["2026-01-01T00:00:00Z"], True, "2026-01-01T00:30:00+01:00", True),
    (O.BEFORE, ["2026-01-01T00:00:00Z"], True, 1767225599, True),
    (O.BEFORE, [1767225600], True, "2025-12-31T23:59:59.5Z", True),
    (O.AFTER, ["2026-01-01T00:00:00Z"], True, "2026-01-01T00:00:01Z", True),
    (O.AFTER, ["2026-01-01T00:00:00Z"], True, "2026-01-01T00:00:00Z", False),
    (O.AFTER, ["2026-01-01T00:00:00Z"], True, "2026-01-01T00:00:01", False),
    (O.AFTER, ["2026-01-01T00:00:00Z"], True, "tomorrow", False),
    (O.AFTER, ["2026-01-01T00:00:00Z"], True, True, False),
    # semver: strict SemVer 2.0, pre-releases below the release, build ignored
    (O.SEMVER_EQ, ["1.2.3"], True, "1.2.3", True),
    (O.SEMVER_EQ, ["1.2.3"], True, "1.2.3+build.7", True),
    (O.SEMVER_EQ, ["1.2.3"], True, "v1.2.3", False),
    (O.SEMVER_EQ, ["1.2.3"], True, "1.2", False),
    (O.SEMVER_EQ, ["1.2.3"], True, 1.2, False),
    (O.SEMVER_LT, ["2.0.0"], True, "2.0.0-rc.1", True),
    (O.SEMVER_LT, ["2.0.0-rc.2"], True, "2.0.0-rc.10", False),
    (O.SEMVER_LT, ["2.0.0-rc.10"], True, "2.0.0-rc.2", True),
    (O.SEMVER_LT, ["2.0.0-alpha"], True, "2.0.0-alpha.1", False),
    (O.SEMVER_LTE, ["1.0.0"], True, "1.0.0", True),
    (O.SEMVER_GT, ["1.9.0"], True, "1.10.0", True),
    (O.SEMVER_GT, ["1.0.0"], True, "1.0.0-beta", False),
    (O.SEMVER_GTE, ["1.0.0"], True, "1.0.0", True),
    (O.SEMVER_GTE, ["1.0.0"], True, "0.9.9", False),
    # exists: any non-null value
    (O.EXISTS, [], True, "", True),
    (O.EXISTS, [], True, 0, True),
    (O.EXISTS, [], True, False, True),
    (O.EXISTS, [], True, [], True),
    (O.EXISTS, [], True, None, False),
]


@pytest.mark.parametrize(("operator", "values", "case_sensitive", "value", "expected"), CASES)
def test_each_operator_matches_as_documented(
    operator: Operator, values: list[object], case_sensitive: bool, value: object, expected: bool
) -> None:
    predicate = compile_operator(operator, values, case_sensitive=case_sensitive)
    assert predicate(value) is expected


SAMPLE_VALUES: dict[Operator, list[object]] = {
    O.IN: ["x"],
    O.STARTS_WITH: [""],
    O.ENDS_WITH: [""],
    O.CONTAINS: [""],
    O.MATCHES: [""],
    O.EQUALS: [1],
    O.LT: [1],
    O.LTE: [1],
    O.GT: [1],
    O.GTE: [1],
    O.BEFORE: ["2026-01-01T00:00:00Z"],
    O.AFTER: ["2026-01-01T00:00:00Z"],
    O.SEMVER_EQ: ["1.0.0"],
    O.SEMVER_LT: ["1.0.0"],
    O.SEMVER_LTE: ["1.0.0"],
    O.SEMVER_GT: ["1.0.0"],
    O.SEMVER_GTE: ["1.0.0"],
    O.EXISTS: [],
}


@pytest.mark.parametrize(("operator", "values"), SAMPLE_VALUES.items())
def test_a_missing_attribute_matches_no_operator(operator: Operator, values: list[object]) -> None:
    assert compile_operator(operator, values)(None) is False


@pytest.mark.parametrize(
    ("operator", "values", "index"),
    [
        (O.MATCHES, ["ok", "(?=look-ahead)"], 1),
        (O.MATCHES, ["(a)\\1"], 0),
        (O.MATCHES, [3], 0),
        (O.IN, ["a", None], 1),
        (O.IN, [float("nan")], 0),
        (O.IN, [["nested"]], 0),
        (O.STARTS_WITH, [1], 0),
        (O.EQUALS, ["twelve"], 0),
        (O.LT, [True], 0),
        (O.GT, [], None),
        (O.BEFORE, ["2026-01-01T00:00:00"], 0),
        (O.AFTER, ["next week"], 0),
        (O.SEMVER_EQ, ["v1.0.0"], 0),
        (O.SEMVER_GT, ["1.0.0", "1.0"], 1),
        (O.SEGMENT_MATCH, ["beta"], None),
    ],
)
def test_unusable_clause_values_are_refused_at_load(
    operator: Operator, values: list[object], index: int | None
) -> None:
    with pytest.raises(ClauseError) as caught:
        compile_operator(operator, values)
    assert caught.value.index == index


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (3, 3),
        (2.5, 2.5),
        ("12", 12.0),
        ("-1.5e2", -150.0),
        (".5", 0.5),
        ("1_000", None),
        ("inf", None),
        (" 1", None),
        (True, None),
        (float("inf"), None),
        (None, None),
    ],
)
def test_numbers_are_plain_decimals(value: object, number: float | None) -> None:
    assert to_number(value) == number


@pytest.mark.parametrize(
    ("value", "epoch"),
    [
        ("1970-01-01T00:00:10Z", 10.0),
        ("1970-01-01T01:00:10+01:00", 10.0),
        (10, 10.0),
        ("10", 10.0),
        ("1970-01-01", None),
        ("1970-01-01T00:00:10", None),
        ([], None),
    ],
)
def test_dates_are_rfc3339_with_an_offset_or_epoch_seconds(
    value: object, epoch: float | None
) -> None:
    assert to_epoch(value) == epoch


def test_a_regular_expression_cannot_take_exponential_time() -> None:
    predicate = compile_operator(O.MATCHES, ["^(a+)+$"])
    assert predicate("a" * 50_000 + "b") is False
