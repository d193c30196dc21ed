"""Evaluation: compile an environment's flags once, then evaluate with dict gets only.

Order: off → off variation; prerequisites; individual targets; rules in order (first
match wins; a gated rule that does not admit the subject passes to the next rule);
fallthrough. Every outcome that does not depend on a split is an Evaluation built at
compile time, so the hot path returns a prebuilt object; splits pick among prebuilt ones.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import cast

from interlock.engine.model import (
    Flag,
    FlagConfig,
    Kind,
)

Context = Mapping[str, object]


class Reason(enum.StrEnum):
    STATIC = "STATIC"
    DEFAULT = "DEFAULT"
    TARGETING_MATCH = "TARGETING_MATCH"
    SPLIT = "SPLIT"
    DISABLED = "DISABLED"
    ERROR = "ERROR"


class ErrorCode(enum.StrEnum):
    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    PARSE_ERROR = "PARSE_ERROR"
    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    GENERAL = "GENERAL"


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One evaluation's result. ``variation`` None means: serve the caller's default.

    ``prerequisite`` names the prerequisite that was not met (the flag then serves its
    off variation with reason DISABLED).
    """

    value: object
    variation: str | None
    reason: Reason
    rule_index: int | None = None
    rule_id: str | None = None
    error_code: ErrorCode | None = None
    in_experiment: bool = False
    prerequisite: str | None = None


Runner = Callable[[Context, "str | None", "float | None"], Evaluation]


class CompiledFlag:
    """A flag's config in one environment, ready to evaluate. Immutable once built."""

    __slots__ = ("config", "flag", "key", "kind", "run")

    def __init__(self, flag: Flag, config: FlagConfig, run: Runner) -> None:
        self.flag = flag
        self.config = config
        self.key = flag.key
        self.kind = flag.kind
        self.run = run


_NOT_FOUND = Evaluation(None, None, Reason.ERROR, error_code=ErrorCode.FLAG_NOT_FOUND)
_INVALID_CONTEXT = Evaluation(None, None, Reason.ERROR, error_code=ErrorCode.INVALID_CONTEXT)
_TYPE_MISMATCH = Evaluation(None, None, Reason.ERROR, error_code=ErrorCode.TYPE_MISMATCH)


def evaluate(
    flag: CompiledFlag | None,
    context: Context,
    *,
    random_key: str | None = None,
    now: float | None = None,
    kind: Kind | None = None,
    default: object = None,
) -> Evaluation:
    """Evaluate ``flag`` for ``context``. Never raises.

    ``random_key`` is bucketed where a split falls back to random bucketing (the engine
    stays pure); ``now`` (epoch seconds) stands in for a date clause's absent attribute.
    With ``kind`` a flag of another kind is a TYPE_MISMATCH. Where the result serves the
    caller's default (``variation`` None), ``value`` is ``default``.
    """
    if flag is None:
        found = _NOT_FOUND
    elif type(context) is not dict and not isinstance(cast(object, context), Mapping):
        found = _INVALID_CONTEXT
    elif kind is not None and kind is not flag.kind:
        found = _TYPE_MISMATCH
    else:
        found = flag.run(context, random_key, now)
    if found.variation is None and default is not None:
        return replace(found, value=default)
    return found
