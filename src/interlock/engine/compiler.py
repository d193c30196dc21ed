"""Compile an environment's flags and segments into evaluators (see evaluate.py).

Everything that can be decided before a context is known is decided here: clause values are
parsed, segment keys are sets, splits have cumulative bounds and salts, and every possible
result that does not depend on the context is a prebuilt Evaluation.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from typing import cast

import mmh3

from interlock.engine import bucketing
from interlock.engine.bucketing import BucketingMode
from interlock.engine.evaluate import (
    CompiledFlag,
    Context,
    ErrorCode,
    Evaluation,
    Reason,
    Runner,
)
from interlock.engine.model import (
    MAX_PREREQUISITE_DEPTH,
    TARGETING_KEY,
    Clause,
    Flag,
    FlagConfig,
    Gate,
    ModelError,
    Segment,
    Serve,
    Split,
    validate_config,
    validate_flag,
    validate_segment,
)
from interlock.engine.operators import DATE_OPERATORS, Operator, Predicate, compile_operator

# Clause lookups: ``get(attribute, default)`` where a segment clause's attribute is this
# object (never a context key), so its default, the whole context, is what it receives.
_WHOLE_CONTEXT = object()
_VALUE, _VALUE_OR_NOW, _CONTEXT = 0, 1, 2
# (attribute, predicate, negate, default slot, exact strings): ``exact`` is the value set of
# a case-sensitive ``in`` over strings, tested inline for string values (the common clause).
ClausePlan = tuple[object, Predicate, bool, int, frozenset[str] | None]
Picker = Callable[[Context, "str | None"], Evaluation]


def _keyer(
    bucket_by: tuple[str, ...], random_fallback: bool
) -> Callable[[Context, str | None], str | None]:
    """The text a subject is bucketed on: the first bucketable attribute, else random."""
    text_of = bucketing.bucket_text
    if len(bucket_by) == 1 and not random_fallback:
        (attribute,) = bucket_by

        def single(ctx: Context, rnd: str | None) -> str | None:
            return text_of(ctx.get(attribute))

        return single

    def chain(ctx: Context, rnd: str | None) -> str | None:
        for attribute in bucket_by:
            text = text_of(ctx.get(attribute))
            if text is not None and text != "":
                return text
        return rnd if random_fallback else None

    return chain


def _compile_split(
    split: Split, salt: str, results: tuple[Evaluation, ...], missing: Evaluation
) -> Picker:
    keyer = _keyer(split.bucket_by, split.random_fallback)
    bounds = bucketing.cumulative_bounds(w for _, w in split.weights)
    total = bounds[-1]
    pick = bucketing.pick
    mode = split.mode
    if mode is BucketingMode.INTERLOCK:
        prefix = bucketing.salt_prefix(salt)
        bucket = bucketing.bucket
        if split.bucket_by == (TARGETING_KEY,) and not split.random_fallback:
            return _interlock_on_targeting_key(prefix, bounds, results, missing)

        def interlock(ctx: Context, rnd: str | None) -> Evaluation:
            text = keyer(ctx, rnd)
            if text is None:
                return missing
            return results[pick(bounds, bucket(prefix, text))]

        return interlock
    if mode is BucketingMode.UNLEASH_VARIANT:
        target = bucketing.unleash_variant_target

        def unleash(ctx: Context, rnd: str | None) -> Evaluation:
            text = keyer(ctx, rnd)
            if text is None:
                return missing
            return results[pick(bounds, target(salt, text, total) - 1)]

        return unleash
    point = bucketing.flagd_v2_point

    def flagd(ctx: Context, rnd: str | None) -> Evaluation:
        text = keyer(ctx, rnd)
        if text is None:
            return missing
        return results[pick(bounds, point(salt + text, total))]

    return flagd


def _interlock_on_targeting_key(
    prefix: str, bounds: tuple[int, ...], results: tuple[Evaluation, ...], missing: Evaluation
) -> Picker:
    """The common split, inlined: the run has already refused a non-string targeting key."""
    hash_ = mmh3.hash
    buckets = bucketing.BUCKETS

    def pick_by_key(ctx: Context, rnd: str | None) -> Evaluation:
        key = ctx.get(TARGETING_KEY)
        if key is None:
            return missing
        return results[bisect_right(bounds, (hash_(prefix + key, 0, False) * buckets) >> 32)]  # type: ignore[operator]

    return pick_by_key


def _compile_gate(gate: Gate, salt: str) -> Callable[[Context, str | None], bool]:
    keyer = _keyer(gate.bucket_by, gate.random_fallback)
    percentage = gate.percentage
    if gate.mode is BucketingMode.UNLEASH_STRATEGY:
        normalized = bucketing.unleash_strategy_bucket

        def unleash(ctx: Context, rnd: str | None) -> bool:
            # Unleash: on iff percentage > 0 and (hash % 100 + 1) <= percentage (in %).
            if percentage <= 0:
                return False
            text = keyer(ctx, rnd)
            return text is not None and normalized(salt, text) * 1000 <= percentage

        return unleash
    prefix = bucketing.salt_prefix(salt)
    bucket = bucketing.bucket

    def interlock(ctx: Context, rnd: str | None) -> bool:
        if percentage >= bucketing.BUCKETS:
            return True  # 100 % never depends on the key, nor on having one
        text = keyer(ctx, rnd)
        return text is not None and bucket(prefix, text) < percentage

    return interlock


def _segment_predicate(segment: Segment) -> Predicate:
    included, excluded = segment.included, segment.excluded
    rules = tuple(tuple(_clause_plan(c, {}) for c in rule.clauses) for rule in segment.rules)

    def member(ctx: object) -> bool:
        get = ctx.get  # type: ignore[attr-defined]
        key = get(TARGETING_KEY)
        if key in included:
            return True
        if key in excluded:
            return False
        slots = (None, None, ctx)
        for clauses in rules:
            for attribute, predicate, negate, slot, _exact in clauses:
                if predicate(get(attribute, slots[slot])) is negate:
                    break
            else:
                return True
        return False

    return member


def _clause_plan(clause: Clause, segments: Mapping[str, Predicate]) -> ClausePlan:
    if clause.operator is Operator.SEGMENT_MATCH:
        members = tuple(segments[key] for key in clause.values)  # type: ignore[index]
        if len(members) == 1:
            return (_WHOLE_CONTEXT, members[0], clause.negate, _CONTEXT, None)

        def in_any(ctx: object) -> bool:
            return any(member(ctx) for member in members)

        return (_WHOLE_CONTEXT, in_any, clause.negate, _CONTEXT, None)
    predicate = compile_operator(
        clause.operator, clause.values, case_sensitive=clause.case_sensitive
    )
    slot = _VALUE_OR_NOW if clause.operator in DATE_OPERATORS else _VALUE
    exact = None
    if (
        clause.operator is Operator.IN
        and clause.case_sensitive
        and all(type(v) is str for v in clause.values)
    ):
        exact = frozenset(cast("tuple[str, ...]", clause.values))
    return (clause.attribute, predicate, clause.negate, slot, exact)


def _compile_serve(
    serve: Serve,
    salt: str,
    make: Callable[[str, bool], Evaluation],
    missing: Evaluation,
) -> tuple[Evaluation | None, Picker | None]:
    """A fixed result, or a picker among prebuilt split results."""
    if serve.variation is not None:
        return make(serve.variation, False), None
    split = serve.split
    assert split is not None
    results = tuple(make(key, True) for key, _ in split.weights)
    return None, _compile_split(split, split.salt or salt, results, missing)


def _compile_runner(
    flag: Flag,
    config: FlagConfig,
    segments: Mapping[str, Predicate],
    compiled: Mapping[str, CompiledFlag],
) -> Runner:
    values = {v.key: v.value for v in flag.variations}

    def result(variation: str | None, reason: Reason, **details: object) -> Evaluation:
        value = None if variation is None else values[variation]
        return Evaluation(value, variation, reason, **details)  # type: ignore[arg-type]

    off_result = result(config.off_variation, Reason.DISABLED)
    if not config.on:

        def off(ctx: Context, rnd: str | None, now: float | None) -> Evaluation:
            return off_result

        return off

    missing = Evaluation(None, None, Reason.ERROR, error_code=ErrorCode.TARGETING_KEY_MISSING)
    invalid = Evaluation(None, None, Reason.ERROR, error_code=ErrorCode.INVALID_CONTEXT)
    prerequisites = tuple(
        (
            compiled[p.flag].run,
            frozenset[str | None](p.variations),
            result(config.off_variation, Reason.DISABLED, prerequisite=p.flag),
        )
        for p in config.prerequisites
    )
    targets = {
        key: result(target.variation, Reason.TARGETING_MATCH)
        for target in config.targets
        for key in target.keys
    }
    rules = []
    for index, rule in enumerate(config.rules):
        experiment = bool(rule.serve.split and rule.serve.split.experiment)

        def make(
            variation: str,
            split: bool,
            index: int = index,
            rule_id: object = rule.id,
            experiment: bool = experiment,
        ) -> Evaluation:
            reason = Reason.SPLIT if split else Reason.TARGETING_MATCH
            in_experiment = split and experiment
            return result(
                variation, reason, rule_index=index, rule_id=rule_id, in_experiment=in_experiment
            )

        fixed, picker = _compile_serve(rule.serve, flag.key, make, missing)
        gate = None if rule.gate is None else _compile_gate(rule.gate, rule.gate.salt or flag.key)
        clauses = tuple(_clause_plan(clause, segments) for clause in rule.clauses)
        rules.append((clauses, gate, fixed, picker))
    rule_plan = tuple(rules)

    fallthrough_fixed: Evaluation | None
    fallthrough_picker: Picker | None = None
    if config.fallthrough is None:
        fallthrough_fixed = Evaluation(None, None, Reason.DEFAULT)
    else:
        targeted = bool(config.targets or config.rules or config.prerequisites)
        fallthrough_reason = Reason.DEFAULT if targeted else Reason.STATIC
        experiment = bool(config.fallthrough.split and config.fallthrough.split.experiment)

        def make_fallthrough(variation: str, split: bool) -> Evaluation:
            if split:
                return result(variation, Reason.SPLIT, in_experiment=experiment)
            return result(variation, fallthrough_reason)

        fallthrough_fixed, fallthrough_picker = _compile_serve(
            config.fallthrough, flag.key, make_fallthrough, missing
        )

    def run(ctx: Context, rnd: str | None, now: float | None) -> Evaluation:
        for prerequisite_run, accepted, failed in prerequisites:
            if prerequisite_run(ctx, rnd, now).variation not in accepted:
                return failed
        get = ctx.get
        key = get(TARGETING_KEY)
        if key is not None:
            if type(key) is not str:
                return invalid
            hit = targets.get(key)
            if hit is not None:
                return hit
        if rule_plan:
            slots = (None, now, ctx)
            for clauses, gate, fixed, picker in rule_plan:
                for attribute, predicate, negate, slot, exact in clauses:
                    value = get(attribute, slots[slot])  # type: ignore[call-overload]
                    if exact is not None and type(value) is str:
                        if (value in exact) is negate:
                            break
                    elif predicate(value) is negate:
                        break
                else:
                    if gate is not None and not gate(ctx, rnd):
                        continue
                    if fixed is not None:
                        return fixed
                    return picker(ctx, rnd)  # type: ignore[misc]
        if fallthrough_fixed is not None:
            return fallthrough_fixed
        return fallthrough_picker(ctx, rnd)  # type: ignore[misc]

    return run


def _prerequisite_order(pairs: Mapping[str, tuple[Flag, FlagConfig]]) -> list[str]:
    """Flag keys, each after its prerequisites; refuses unknown flags, cycles and depth."""
    order: list[str] = []
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(key: str, path: tuple[str, ...]) -> int:
        if key in depth:
            return depth[key]
        if key in visiting:
            raise ModelError(f"/{key}/prerequisites", "cycle: " + " → ".join((*path, key)))
        visiting.add(key)
        deepest = 0
        for i, prerequisite in enumerate(pairs[key][1].prerequisites):
            pointer = f"/{key}/prerequisites/{i}"
            if prerequisite.flag not in pairs:
                raise ModelError(pointer + "/flag", f"unknown flag {prerequisite.flag!r}")
            known = pairs[prerequisite.flag][0].variation_keys()
            for j, variation in enumerate(prerequisite.variations):
                if variation not in known:
                    raise ModelError(
                        f"{pointer}/variations/{j}", f"unknown variation {variation!r}"
                    )
            deepest = max(deepest, 1 + visit(prerequisite.flag, (*path, key)))
        if deepest > MAX_PREREQUISITE_DEPTH:
            raise ModelError(f"/{key}/prerequisites", f"deeper than {MAX_PREREQUISITE_DEPTH}")
        visiting.discard(key)
        depth[key] = deepest
        order.append(key)
        return deepest

    for key in pairs:
        visit(key, ())
    return order


def compile_environment(
    flags: Mapping[str, tuple[Flag, FlagConfig]], segments: Mapping[str, Segment]
) -> dict[str, CompiledFlag]:
    """Validate and compile one environment's flags; raise ModelError naming the field.

    Pointers are ``/<flag key>/...`` into the flag's config (``/<key>/flag/...`` for the
    flag itself) or ``/segments/<key>/...``. Nothing here is retained but the result.
    """
    for key, segment in segments.items():
        try:
            validate_segment(segment)
        except ModelError as error:
            raise ModelError(f"/segments/{key}{error.pointer}", error.message) from None
    segment_keys = frozenset(segments)
    for key, (flag, config) in flags.items():
        try:
            validate_flag(flag)
        except ModelError as error:
            raise ModelError(f"/{key}/flag{error.pointer}", error.message) from None
        if flag.key != key:
            raise ModelError(f"/{key}/flag/key", "the flag's key differs from its entry")
        try:
            validate_config(flag, config, segment_keys)
        except ModelError as error:
            raise ModelError(f"/{key}{error.pointer}", error.message) from None
    members = {key: _segment_predicate(segment) for key, segment in segments.items()}
    compiled: dict[str, CompiledFlag] = {}
    for key in _prerequisite_order(flags):
        flag, config = flags[key]
        compiled[key] = CompiledFlag(flag, config, _compile_runner(flag, config, members, compiled))
    return compiled
