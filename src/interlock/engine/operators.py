"""Clause operators, compiled once into predicates over one context value.

Every predicate takes the attribute's value (``None`` when the attribute is missing or
null: the two are treated alike) and never raises. Shared rules, documented in
docs/engine.md:

- A missing attribute matches nothing except a negated clause (negation is applied by the
  caller as the logical NOT of the predicate, so a missing attribute matches ``not in``).
- A value of the wrong type for the operator does not match (it is not an error).
- A list matches when any of its elements does (one level; an empty list matches nothing).
- A clause with several values matches when the value matches any of them.
- ``case_sensitive=False`` applies to in, starts_with, ends_with, contains and matches,
  and compares Unicode case-folded text (``"STRASSE"`` equals ``"straße"``).

Clause values are checked here, at load time: an invalid pattern, number, date or version
raises :class:`ClauseError`, so evaluation never parses a clause value.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import cast

import re2
import semver

Predicate = Callable[[object], bool]


class Operator(enum.StrEnum):
    IN = "in"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    CONTAINS = "contains"
    MATCHES = "matches"
    EQUALS = "equals"
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    BEFORE = "before"
    AFTER = "after"
    SEMVER_EQ = "semver_eq"
    SEMVER_LT = "semver_lt"
    SEMVER_LTE = "semver_lte"
    SEMVER_GT = "semver_gt"
    SEMVER_GTE = "semver_gte"
    EXISTS = "exists"
    SEGMENT_MATCH = "segment_match"


DATE_OPERATORS = frozenset({Operator.BEFORE, Operator.AFTER})


class ClauseError(ValueError):
    """A clause that cannot be compiled; ``index`` is the offending value's position."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


# Python's float() also takes "1_000", "nan" and "infinity"; numbers here are plain decimals.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def to_number(value: object) -> int | float | None:
    """A finite number from an int, a float or a decimal string; None for anything else."""
    kind = type(value)
    if kind is int:
        return cast(int, value)
    if kind is float:
        return cast(float, value) if math.isfinite(cast(float, value)) else None
    if kind is str and _NUMBER.fullmatch(cast(str, value)):
        number = float(cast(str, value))
        return number if math.isfinite(number) else None
    return None


def to_epoch(value: object) -> float | None:
    """Seconds since the epoch from epoch seconds (number or decimal string) or RFC 3339.

    RFC 3339 requires an offset, so a date-time without one is not a date (None).
    """
    number = to_number(value)
    if number is not None:
        return float(number)
    if type(value) is not str or len(value) < 20 or value[10] not in "Tt ":
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def to_version(value: object) -> semver.Version | None:
    """A strict SemVer 2.0 version (``1.2.3-rc.1+build``; not ``v1.2.3`` nor ``1.2``)."""
    if type(value) is not str:
        return None
    try:
        return semver.Version.parse(value)
    except ValueError:
        return None


def _each(scalar: Predicate) -> Predicate:
    """Lift a predicate on one value to lists: a list matches if any element does."""

    def predicate(value: object) -> bool:
        if type(value) is list:
            return any(scalar(element) for element in value)
        return scalar(value)

    return predicate


def _strings(operator: Operator, values: Sequence[object], fold: bool) -> tuple[str, ...]:
    strings: list[str] = []
    for index, value in enumerate(values):
        if type(value) is not str:
            raise ClauseError(f"{operator} takes strings", index)
        strings.append(value.casefold() if fold else value)
    return tuple(strings)


def _compile_in(values: Sequence[object], fold: bool) -> Predicate:
    strings: set[str] = set()
    numbers: set[int | float] = set()
    booleans: set[bool] = set()
    for index, value in enumerate(values):
        if type(value) is str:
            strings.add(value.casefold() if fold else value)
        elif type(value) is bool:
            booleans.add(value)
        elif type(value) in (int, float) and to_number(value) is not None:
            numbers.add(value)  # type: ignore[arg-type]
        else:
            raise ClauseError("in takes strings, finite numbers and booleans", index)
    frozen_strings = frozenset(strings)

    def scalar(value: object) -> bool:
        kind = type(value)
        if kind is str:
            text = cast(str, value)
            return (text.casefold() if fold else text) in frozen_strings
        if kind is int or kind is float:
            return value in numbers
        if kind is bool:
            return value in booleans
        return False

    if not fold and not numbers and not booleans:
        # The common case (string keys, exact): one type check and one set lookup.
        def exact(value: object) -> bool:
            if type(value) is str:
                return value in frozen_strings
            if type(value) is list:
                return any(type(e) is str and e in frozen_strings for e in value)
            return False

        return exact
    return _each(scalar)


def _compile_text(operator: Operator, values: Sequence[object], fold: bool) -> Predicate:
    needles = _strings(operator, values, fold)

    if operator is Operator.STARTS_WITH:

        def test(text: str) -> bool:
            return text.startswith(needles)
    elif operator is Operator.ENDS_WITH:

        def test(text: str) -> bool:
            return text.endswith(needles)
    else:

        def test(text: str) -> bool:
            return any(needle in text for needle in needles)

    def scalar(value: object) -> bool:
        if type(value) is not str:
            return False
        return test(value.casefold() if fold else value)

    return _each(scalar)


def compile_pattern(pattern: str, case_sensitive: bool = True) -> Callable[[str], object]:
    """An RE2 search function for ``pattern``; raises ClauseError when RE2 refuses it.

    RE2 runs in linear time, so no pattern or input can hang evaluation; it has no
    look-around or back-references, and accepts POSIX classes and inline flags anywhere.
    """
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = case_sensitive
    try:
        return re2.compile(pattern, options).search  # type: ignore[no-any-return]
    except re2.error as error:
        message = error.args[0] if error.args else error
        if isinstance(message, bytes):
            message = message.decode(errors="replace")
        raise ClauseError(f"invalid pattern: {message}") from None


def _compile_matches(values: Sequence[object], fold: bool) -> Predicate:
    patterns = _strings(Operator.MATCHES, values, False)
    searches: list[Callable[[str], object]] = []
    for index, pattern in enumerate(patterns):
        try:
            searches.append(compile_pattern(pattern, case_sensitive=not fold))
        except ClauseError as error:
            raise ClauseError(str(error), index) from None

    def scalar(value: object) -> bool:
        if type(value) is not str:
            return False
        return any(search(value) is not None for search in searches)

    return _each(scalar)


def _parsed(
    operator: Operator, values: Sequence[object], parse: Callable[[object], object]
) -> list[object]:
    if not values:
        raise ClauseError(f"{operator} needs at least one value")
    parsed = []
    for index, value in enumerate(values):
        result = parse(value)
        if result is None:
            raise ClauseError(f"{operator} cannot use {value!r}", index)
        parsed.append(result)
    return parsed


def _compile_ordered(
    operator: Operator, bounds: list[float], parse: Callable[[object], float | None]
) -> Predicate:
    """Numbers and dates: ``lt 3, 5`` (any) is ``< 5``, so one bound is compared."""
    low, high = min(bounds), max(bounds)
    choices = frozenset(bounds)
    tests: dict[Operator, Callable[[float], bool]] = {
        Operator.EQUALS: choices.__contains__,
        Operator.LT: high.__gt__,
        Operator.BEFORE: high.__gt__,
        Operator.LTE: high.__ge__,
        Operator.GT: low.__lt__,
        Operator.AFTER: low.__lt__,
        Operator.GTE: low.__le__,
    }
    test = tests[operator]

    def scalar(value: object) -> bool:
        number = parse(value)
        return number is not None and test(number)

    return _each(scalar)


_SEMVER_TESTS: dict[Operator, Callable[[int], bool]] = {
    Operator.SEMVER_EQ: lambda c: c == 0,
    Operator.SEMVER_LT: lambda c: c < 0,
    Operator.SEMVER_LTE: lambda c: c <= 0,
    Operator.SEMVER_GT: lambda c: c > 0,
    Operator.SEMVER_GTE: lambda c: c >= 0,
}


def _compile_semver(operator: Operator, values: Sequence[object]) -> Predicate:
    versions = _parsed(operator, values, to_version)
    test = _SEMVER_TESTS[operator]

    def scalar(value: object) -> bool:
        version = to_version(value)
        if version is None:
            return False
        return any(test(version.compare(bound)) for bound in versions)  # type: ignore[arg-type]

    return _each(scalar)


def _exists(value: object) -> bool:
    return value is not None


def compile_operator(
    operator: Operator, values: Sequence[object], *, case_sensitive: bool = True
) -> Predicate:
    """Compile a clause's operator and values into a predicate over the attribute's value.

    Raises ClauseError for values the operator cannot use. ``segment_match`` is resolved by
    the evaluator (it needs the segments), so it is refused here.
    """
    fold = not case_sensitive
    if operator is Operator.IN:
        return _compile_in(values, fold)
    if operator in (Operator.STARTS_WITH, Operator.ENDS_WITH, Operator.CONTAINS):
        return _compile_text(operator, values, fold)
    if operator is Operator.MATCHES:
        return _compile_matches(values, fold)
    if operator in (Operator.EQUALS, Operator.LT, Operator.LTE, Operator.GT, Operator.GTE):
        numbers = _parsed(operator, values, to_number)
        return _compile_ordered(operator, [float(n) for n in numbers], _float_number)  # type: ignore[arg-type]
    if operator in DATE_OPERATORS:
        epochs = _parsed(operator, values, to_epoch)
        return _compile_ordered(operator, epochs, to_epoch)  # type: ignore[arg-type]
    if operator in _SEMVER_TESTS:
        return _compile_semver(operator, values)
    if operator is Operator.EXISTS:
        return _exists
    raise ClauseError(f"{operator} is not a value operator")


def _float_number(value: object) -> float | None:
    number = to_number(value)
    return None if number is None else float(number)
