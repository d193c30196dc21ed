"""The flag model: frozen plain data, validated once before it is compiled.

Validation errors carry a JSON pointer relative to the object validated (a flag, its
environment config or a segment), so the API can answer 422 pointing at the field.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field

from interlock.engine.bucketing import BUCKETS, BucketingMode
from interlock.engine.operators import ClauseError, Operator, compile_operator

#: OpenFeature's name for the context attribute that identifies the subject.
TARGETING_KEY = "targetingKey"
#: How many prerequisites deep a chain may go (a → b → c is depth 2).
MAX_PREREQUISITE_DEPTH = 8
#: flagd's limit on the sum of fractional weights, which Unleash's totals also fit in.
MAX_COMPATIBLE_TOTAL = 2**31 - 1

# Unicode letters and digits plus . _ ~ -, starting with a letter or digit. \w is Unicode
# letters, digits and "_", so [^\W_] is a letter or digit.
_KEY = re.compile(r"[^\W_][\w.~-]{0,127}")


def is_valid_key(key: object) -> bool:
    """Whether ``key`` is a valid flag, segment or variation key (case-sensitive)."""
    return type(key) is str and _KEY.fullmatch(key) is not None


class Kind(enum.StrEnum):
    BOOLEAN = "boolean"
    STRING = "string"
    NUMBER = "number"
    JSON = "json"


class ModelError(ValueError):
    """An invalid flag, config or segment; ``pointer`` is a JSON pointer to the field."""

    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(f"{pointer or '/'}: {message}")
        self.pointer = pointer
        self.message = message


@dataclass(frozen=True, slots=True)
class Variation:
    key: str
    value: object


@dataclass(frozen=True, slots=True)
class Clause:
    attribute: str
    operator: Operator
    values: tuple[object, ...] = ()
    negate: bool = False
    case_sensitive: bool = True


@dataclass(frozen=True, slots=True)
class Split:
    """Weights per variation key. In interlock's mode they are thousandths of a percent and
    sum to 100000; compatible modes take the peer's own weights (any positive total).

    ``bucket_by`` lists attributes tried in order (Unleash's default stickiness is userId,
    then sessionId); with ``random_fallback`` a subject with none of them is bucketed on
    the random key the caller passes, as Unleash does.
    """

    weights: tuple[tuple[str, int], ...]
    bucket_by: tuple[str, ...] = (TARGETING_KEY,)
    salt: str | None = None
    mode: BucketingMode = BucketingMode.INTERLOCK
    random_fallback: bool = False
    experiment: bool = False


@dataclass(frozen=True, slots=True)
class Gate:
    """A rule matches only for ``percentage`` thousandths of a percent of subjects."""

    percentage: int
    bucket_by: tuple[str, ...] = (TARGETING_KEY,)
    salt: str | None = None
    mode: BucketingMode = BucketingMode.INTERLOCK
    random_fallback: bool = False


@dataclass(frozen=True, slots=True)
class Serve:
    """What a rule or the fallthrough serves: one variation, or a split."""

    variation: str | None = None
    split: Split | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    clauses: tuple[Clause, ...]
    serve: Serve
    id: str | None = None
    gate: Gate | None = None


@dataclass(frozen=True, slots=True)
class Target:
    variation: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Prerequisite:
    """Satisfied when flag ``flag`` serves one of ``variations`` to the same context."""

    flag: str
    variations: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FlagConfig:
    on: bool = False
    off_variation: str | None = None
    targets: tuple[Target, ...] = ()
    rules: tuple[Rule, ...] = ()
    fallthrough: Serve | None = None
    prerequisites: tuple[Prerequisite, ...] = ()
    version: int = 0


@dataclass(frozen=True, slots=True)
class Flag:
    key: str
    kind: Kind
    variations: tuple[Variation, ...]
    temporary: bool = True
    tags: tuple[str, ...] = ()
    client_side: bool = False

    def variation_keys(self) -> tuple[str, ...]:
        return tuple(v.key for v in self.variations)


@dataclass(frozen=True, slots=True)
class SegmentRule:
    clauses: tuple[Clause, ...]


@dataclass(frozen=True, slots=True)
class Segment:
    """Matches included keys, never excluded keys, otherwise anyone matching any rule."""

    key: str
    included: frozenset[str] = field(default_factory=frozenset)
    excluded: frozenset[str] = field(default_factory=frozenset)
    rules: tuple[SegmentRule, ...] = ()
    version: int = 0


def _fits_kind(kind: Kind, value: object) -> bool:
    if kind is Kind.BOOLEAN:
        return type(value) is bool
    if kind is Kind.STRING:
        return type(value) is str
    if kind is Kind.NUMBER:
        return type(value) is int or (type(value) is float and math.isfinite(value))
    return _is_json(value)


def _is_json(value: object) -> bool:
    if value is None or type(value) in (bool, int, str):
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(_is_json(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _is_json(v) for k, v in value.items())
    return False


def validate_flag(flag: Flag) -> None:
    """Raise ModelError unless the flag's key, kind and variations are valid."""
    if not is_valid_key(flag.key):
        raise ModelError("/key", "keys are 1-128 letters, digits and . _ ~ -, starting alnum")
    if not isinstance(flag.kind, Kind):
        raise ModelError("/kind", "kind is boolean, string, number or json")
    seen: set[str] = set()
    for i, variation in enumerate(flag.variations):
        if not is_valid_key(variation.key):
            raise ModelError(f"/variations/{i}/key", "invalid variation key")
        if variation.key in seen:
            raise ModelError(f"/variations/{i}/key", "duplicate variation key")
        seen.add(variation.key)
        if not _fits_kind(flag.kind, variation.value):
            raise ModelError(f"/variations/{i}/value", f"value is not of kind {flag.kind}")


def validate_clause(clause: Clause, pointer: str, segments: frozenset[str] | None) -> None:
    """Raise ModelError unless the clause compiles; ``segments`` None forbids segment_match."""
    if type(clause.attribute) is not str or not clause.attribute:
        raise ModelError(f"{pointer}/attribute", "attribute must be a non-empty string")
    if not isinstance(clause.operator, Operator):
        raise ModelError(f"{pointer}/operator", "unknown operator")
    if clause.operator is Operator.SEGMENT_MATCH:
        if segments is None:
            raise ModelError(f"{pointer}/operator", "segment rules cannot match segments")
        for i, key in enumerate(clause.values):
            if key not in segments:
                raise ModelError(f"{pointer}/values/{i}", f"unknown segment {key!r}")
        return
    try:
        compile_operator(clause.operator, clause.values, case_sensitive=clause.case_sensitive)
    except ClauseError as error:
        suffix = "/values" if error.index is None else f"/values/{error.index}"
        raise ModelError(pointer + suffix, str(error)) from None


def _validate_bucketing(bucket_by: tuple[str, ...], salt: str | None, pointer: str) -> None:
    if not bucket_by or not all(type(a) is str and a for a in bucket_by):
        raise ModelError(f"{pointer}/bucket_by", "bucket_by names at least one attribute")
    if salt is not None and type(salt) is not str:
        raise ModelError(f"{pointer}/salt", "salt must be a string")


def validate_serve(serve: Serve, variations: tuple[str, ...], pointer: str) -> None:
    if (serve.variation is None) == (serve.split is None):
        raise ModelError(pointer, "serve exactly one of a variation or a split")
    if serve.variation is not None:
        if serve.variation not in variations:
            raise ModelError(f"{pointer}/variation", f"unknown variation {serve.variation!r}")
        return
    split = serve.split
    assert split is not None
    pointer += "/split"
    _validate_bucketing(split.bucket_by, split.salt, pointer)
    if split.mode not in (
        BucketingMode.INTERLOCK,
        BucketingMode.UNLEASH_VARIANT,
        BucketingMode.FLAGD_V2,
    ):
        raise ModelError(
            f"{pointer}/mode", "splits bucket as interlock, unleash_variant or flagd_v2"
        )
    total = 0
    for i, (key, weight) in enumerate(split.weights):
        if key not in variations:
            raise ModelError(f"{pointer}/weights/{i}", f"unknown variation {key!r}")
        if type(weight) is not int or weight < 0:
            raise ModelError(f"{pointer}/weights/{i}", "weights are non-negative integers")
        total += weight
    if split.mode is BucketingMode.INTERLOCK and total != BUCKETS:
        raise ModelError(f"{pointer}/weights", f"weights must sum to {BUCKETS}")
    if not 0 < total <= MAX_COMPATIBLE_TOTAL:
        raise ModelError(f"{pointer}/weights", f"weights must sum to 1..{MAX_COMPATIBLE_TOTAL}")


def validate_config(flag: Flag, config: FlagConfig, segments: frozenset[str] = frozenset()) -> None:
    """Raise ModelError unless ``config`` fits ``flag`` and names only known segments.

    Prerequisites are checked across flags by the compiler (existence, cycles, depth).
    """
    variations = flag.variation_keys()
    if config.off_variation is not None and config.off_variation not in variations:
        raise ModelError("/off_variation", f"unknown variation {config.off_variation!r}")
    targeted: set[str] = set()
    for i, target in enumerate(config.targets):
        if target.variation not in variations:
            raise ModelError(f"/targets/{i}/variation", f"unknown variation {target.variation!r}")
        for j, key in enumerate(target.keys):
            if type(key) is not str or key in targeted:
                raise ModelError(f"/targets/{i}/keys/{j}", "a key is targeted at most once")
            targeted.add(key)
    for i, rule in enumerate(config.rules):
        for j, clause in enumerate(rule.clauses):
            validate_clause(clause, f"/rules/{i}/clauses/{j}", segments)
        validate_serve(rule.serve, variations, f"/rules/{i}/serve")
        if rule.gate is not None:
            gate = rule.gate
            _validate_bucketing(gate.bucket_by, gate.salt, f"/rules/{i}/gate")
            if type(gate.percentage) is not int or not 0 <= gate.percentage <= BUCKETS:
                raise ModelError(f"/rules/{i}/gate/percentage", f"0..{BUCKETS} thousandths")
            if gate.mode not in (BucketingMode.INTERLOCK, BucketingMode.UNLEASH_STRATEGY):
                raise ModelError(f"/rules/{i}/gate/mode", "gates bucket as interlock or unleash")
    if config.fallthrough is not None:
        validate_serve(config.fallthrough, variations, "/fallthrough")
    for i, prerequisite in enumerate(config.prerequisites):
        if not prerequisite.variations:
            raise ModelError(f"/prerequisites/{i}/variations", "name at least one variation")


def validate_segment(segment: Segment) -> None:
    if not is_valid_key(segment.key):
        raise ModelError("/key", "invalid segment key")
    for i, rule in enumerate(segment.rules):
        for j, clause in enumerate(rule.clauses):
            validate_clause(clause, f"/rules/{i}/clauses/{j}", None)
