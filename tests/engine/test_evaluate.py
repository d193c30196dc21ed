"""Evaluation: order, reasons, errors, prerequisites and segments."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.engine.bucketing import BucketingMode, bucket, salt_prefix
from interlock.engine.compiler import compile_environment
from interlock.engine.evaluate import CompiledFlag, ErrorCode, Evaluation, Reason, evaluate
from interlock.engine.model import (
    Clause,
    Flag,
    FlagConfig,
    Gate,
    Kind,
    ModelError,
    Prerequisite,
    Rule,
    Segment,
    SegmentRule,
    Serve,
    Split,
    Target,
    Variation,
)
from interlock.engine.operators import Operator

BOOL = (Variation("on", True), Variation("off", False))
ON = Serve(variation="on")
OFF = Serve(variation="off")


def boolean(key: str = "flag") -> Flag:
    return Flag(key, Kind.BOOLEAN, BOOL)


def half(key: str = "flag", **split: object) -> Serve:
    return Serve(split=Split((("on", 50_000), ("off", 50_000)), **split))  # type: ignore[arg-type]


def one(
    config: FlagConfig, flag: Flag | None = None, segments: dict[str, Segment] | None = None
) -> CompiledFlag:
    flag = flag or boolean()
    return compile_environment({flag.key: (flag, config)}, segments or {})[flag.key]


def role_is(*roles: str, negate: bool = False) -> Clause:
    return Clause("role", Operator.IN, roles, negate=negate)


FULL = FlagConfig(
    on=True,
    off_variation="off",
    targets=(Target("off", ("banned",)), Target("on", ("vip",))),
    rules=(
        Rule((role_is("admin"),), ON, id="admins"),
        Rule((role_is("staff"), Clause("country", Operator.IN, ("NL",))), OFF, id="dutch-staff"),
    ),
    fallthrough=OFF,
)


@pytest.mark.parametrize(
    ("config", "context", "variation", "reason", "rule_index"),
    [
        (
            FlagConfig(on=False, off_variation="off", fallthrough=ON),
            {},
            "off",
            Reason.DISABLED,
            None,
        ),
        (FlagConfig(on=True, fallthrough=ON), {}, "on", Reason.STATIC, None),
        (FULL, {"targetingKey": "banned", "role": "admin"}, "off", Reason.TARGETING_MATCH, None),
        (FULL, {"targetingKey": "vip"}, "on", Reason.TARGETING_MATCH, None),
        (FULL, {"targetingKey": "ann", "role": "admin"}, "on", Reason.TARGETING_MATCH, 0),
        (FULL, {"role": "admin"}, "on", Reason.TARGETING_MATCH, 0),
        (FULL, {"role": "staff", "country": "NL"}, "off", Reason.TARGETING_MATCH, 1),
        (FULL, {"role": "staff", "country": "BE"}, "off", Reason.DEFAULT, None),
        (FULL, {"role": ["staff", "admin"]}, "on", Reason.TARGETING_MATCH, 0),
        (FULL, {}, "off", Reason.DEFAULT, None),
        (FlagConfig(on=True, fallthrough=None), {}, None, Reason.DEFAULT, None),
    ],
)
def test_evaluation_goes_off_then_targets_then_rules_then_fallthrough(
    config: FlagConfig,
    context: dict[str, object],
    variation: str | None,
    reason: Reason,
    rule_index: int | None,
) -> None:
    result = evaluate(one(config), context)
    assert (result.variation, result.reason, result.rule_index) == (variation, reason, rule_index)
    assert result.error_code is None


def test_a_matching_rule_reports_its_id_and_value() -> None:
    result = evaluate(one(FULL), {"role": "admin"})
    assert (result.value, result.rule_id) == (True, "admins")


def test_an_off_flag_without_off_variation_serves_the_callers_default() -> None:
    flag = one(FlagConfig(on=False, fallthrough=ON))
    assert evaluate(flag, {}, default=False) == Evaluation(False, None, Reason.DISABLED)
    assert evaluate(flag, {}).value is None


def test_a_split_needs_the_targeting_key() -> None:
    result = evaluate(one(FlagConfig(on=True, fallthrough=half())), {"role": "x"}, default=True)
    assert (result.reason, result.error_code, result.value) == (
        Reason.ERROR,
        ErrorCode.TARGETING_KEY_MISSING,
        True,
    )


def test_a_split_serves_each_side_its_share_and_reports_split() -> None:
    flag = one(FlagConfig(on=True, fallthrough=half(experiment=True)))
    results = [evaluate(flag, {"targetingKey": f"user-{i}"}) for i in range(2000)]
    assert {r.reason for r in results} == {Reason.SPLIT}
    assert all(r.in_experiment for r in results)
    assert 900 < sum(r.value is True for r in results) < 1100


def test_a_split_buckets_on_the_first_present_attribute_then_the_random_key() -> None:
    serve = half(bucket_by=("userId", "sessionId"), random_fallback=True)
    flag = one(FlagConfig(on=True, fallthrough=serve))
    by_user = evaluate(flag, {"userId": "u1", "sessionId": "s"}, random_key="r")
    same_as_user = evaluate(flag, {"sessionId": "u1"}, random_key="r")
    assert by_user.variation == same_as_user.variation
    assert evaluate(flag, {}, random_key="u1").variation == by_user.variation
    assert evaluate(flag, {}).error_code is ErrorCode.TARGETING_KEY_MISSING


def test_a_gated_rule_that_does_not_admit_the_user_passes_to_the_next_rule() -> None:
    rules = (
        Rule((), ON, gate=Gate(0), id="nobody"),
        Rule((), OFF, gate=Gate(100_000), id="everybody"),
    )
    flag = one(FlagConfig(on=True, rules=rules, fallthrough=ON))
    result = evaluate(flag, {})
    assert (result.rule_id, result.variation) == ("everybody", "off")


def test_a_percentage_gate_admits_its_share() -> None:
    flag = one(FlagConfig(on=True, rules=(Rule((), ON, gate=Gate(25_000)),), fallthrough=OFF))
    admitted = sum(evaluate(flag, {"targetingKey": f"u{i}"}).value is True for i in range(4000))
    assert 850 < admitted < 1150


def test_an_unleash_gate_uses_unleash_buckets() -> None:
    # Unleash's normalized value of "gr1:123" is 73: in at 73 %, out at 72 %.
    def gate(percent: int) -> CompiledFlag:
        g = Gate(
            percent * 1000, bucket_by=("userId",), salt="gr1", mode=BucketingMode.UNLEASH_STRATEGY
        )
        return one(FlagConfig(on=True, rules=(Rule((), ON, gate=g),), fallthrough=OFF))

    assert evaluate(gate(73), {"userId": "123"}).value is True
    assert evaluate(gate(72), {"userId": "123"}).value is False


def test_a_non_string_targeting_key_is_an_invalid_context() -> None:
    result = evaluate(one(FULL), {"targetingKey": ["a"]})
    assert result.error_code is ErrorCode.INVALID_CONTEXT


def test_an_unknown_flag_and_a_wrong_kind_are_errors() -> None:
    assert evaluate(None, {}).error_code is ErrorCode.FLAG_NOT_FOUND
    assert evaluate(one(FULL), {}, kind=Kind.STRING).error_code is ErrorCode.TYPE_MISMATCH
    assert evaluate(one(FULL), "nope").error_code is ErrorCode.INVALID_CONTEXT  # type: ignore[arg-type]


def test_a_date_clause_uses_now_when_the_attribute_is_absent() -> None:
    clause = Clause("currentTime", Operator.AFTER, ("2026-01-01T00:00:00Z",))
    flag = one(FlagConfig(on=True, rules=(Rule((clause,), ON),), fallthrough=OFF))
    assert evaluate(flag, {}, now=1767225601.0).value is True
    assert evaluate(flag, {}, now=1767225599.0).value is False
    assert evaluate(flag, {}).value is False
    assert evaluate(flag, {"currentTime": "2027-01-01T00:00:00Z"}, now=0.0).value is True


def test_a_negated_clause_matches_a_missing_attribute() -> None:
    flag = one(
        FlagConfig(on=True, rules=(Rule((role_is("x", negate=True),), ON),), fallthrough=OFF)
    )
    assert evaluate(flag, {}).value is True
    assert evaluate(flag, {"role": "x"}).value is False


def test_number_values_keep_integer_and_float() -> None:
    flag = Flag("limit", Kind.NUMBER, (Variation("ten", 10), Variation("half", 10.5)))
    ten = one(FlagConfig(on=True, fallthrough=Serve(variation="ten")), flag)
    also = one(FlagConfig(on=True, fallthrough=Serve(variation="half")), flag)
    assert type(evaluate(ten, {}).value) is int
    assert type(evaluate(also, {}).value) is float


# --- prerequisites -------------------------------------------------------------------


def chain(*configs: FlagConfig) -> dict[str, CompiledFlag]:
    flags = {f"f{i}": (boolean(f"f{i}"), c) for i, c in enumerate(configs)}
    return compile_environment(flags, {})


def needs(key: str, *variations: str) -> tuple[Prerequisite, ...]:
    return (Prerequisite(key, variations or ("on",)),)


def test_a_flag_serves_its_off_variation_when_a_prerequisite_is_not_met() -> None:
    flags = chain(
        FlagConfig(on=True, off_variation="off", fallthrough=ON, prerequisites=needs("f1")),
        FlagConfig(on=False, off_variation="off", fallthrough=ON),
    )
    result = evaluate(flags["f0"], {})
    assert (result.variation, result.reason, result.prerequisite) == ("off", Reason.DISABLED, "f1")


def test_prerequisites_are_checked_recursively_before_targets() -> None:
    flags = chain(
        FlagConfig(
            on=True,
            off_variation="off",
            targets=(Target("on", ("vip",)),),
            fallthrough=ON,
            prerequisites=needs("f1"),
        ),
        FlagConfig(on=True, off_variation="off", fallthrough=ON, prerequisites=needs("f2")),
        FlagConfig(
            on=True, off_variation="off", rules=(Rule((role_is("beta"),), ON),), fallthrough=OFF
        ),
    )
    assert evaluate(flags["f0"], {"targetingKey": "vip"}).prerequisite == "f1"
    met = evaluate(flags["f0"], {"targetingKey": "vip", "role": "beta"})
    assert (met.variation, met.reason) == ("on", Reason.TARGETING_MATCH)
    assert evaluate(flags["f0"], {"role": "beta"}).reason is Reason.DEFAULT


def test_a_prerequisite_cycle_is_refused_at_load() -> None:
    with pytest.raises(ModelError, match="cycle"):
        chain(
            FlagConfig(on=True, fallthrough=ON, prerequisites=needs("f1")),
            FlagConfig(on=True, fallthrough=ON, prerequisites=needs("f0")),
        )
    with pytest.raises(ModelError, match="cycle"):
        chain(FlagConfig(on=True, fallthrough=ON, prerequisites=needs("f0")))


def linear(length: int) -> dict[str, CompiledFlag]:
    """f0 needs f1, which needs f2, ... up to f<length-1>: a chain ``length - 1`` deep."""
    last = FlagConfig(on=True, fallthrough=ON)
    needing = [
        FlagConfig(on=True, fallthrough=ON, prerequisites=needs(f"f{i + 1}"))
        for i in range(length - 1)
    ]
    return chain(*needing, last)


def test_prerequisite_depth_is_bounded() -> None:
    assert evaluate(linear(9)["f0"], {}).variation == "on"
    with pytest.raises(ModelError, match="deeper than 8") as caught:
        linear(10)
    assert caught.value.pointer == "/f0/prerequisites"


def test_an_unknown_prerequisite_flag_or_variation_is_refused() -> None:
    with pytest.raises(ModelError) as caught:
        chain(FlagConfig(on=True, fallthrough=ON, prerequisites=needs("ghost")))
    assert caught.value.pointer == "/f0/prerequisites/0/flag"
    with pytest.raises(ModelError) as caught:
        chain(FlagConfig(prerequisites=needs("f1", "maybe")), FlagConfig())
    assert caught.value.pointer == "/f0/prerequisites/0/variations/0"


# --- segments ------------------------------------------------------------------------

BETA = Segment(
    "beta-testers",
    included=frozenset({"ann"}),
    excluded=frozenset({"bob"}),
    rules=(
        SegmentRule((role_is("staff"),)),
        SegmentRule((Clause("email", Operator.ENDS_WITH, ("@corp",)),)),
    ),
)


@pytest.mark.parametrize(
    ("context", "member"),
    [
        ({"targetingKey": "ann"}, True),
        ({"targetingKey": "bob", "role": "staff"}, False),
        ({"targetingKey": "cy", "role": "staff"}, True),
        ({"email": "dee@corp"}, True),
        ({"targetingKey": "eve", "role": "student"}, False),
        ({}, False),
    ],
)
def test_a_segment_includes_excludes_and_then_matches_its_rules(
    context: dict[str, object], member: bool
) -> None:
    segment_clause = Clause("segment", Operator.SEGMENT_MATCH, ("beta-testers",))
    flag = one(
        FlagConfig(on=True, rules=(Rule((segment_clause,), ON),), fallthrough=OFF),
        segments={"beta-testers": BETA},
    )
    assert evaluate(flag, context).value is member
    negated = Clause("segment", Operator.SEGMENT_MATCH, ("beta-testers",), negate=True)
    other = one(
        FlagConfig(on=True, rules=(Rule((negated,), ON),), fallthrough=OFF),
        segments={"beta-testers": BETA},
    )
    assert evaluate(other, context).value is not member


# --- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("Feature.UTF-8.Hellø_Wørld", True),
        ("no spaces allowed!", False),
        ("a", True),
        ("_leading", False),
        ("-x", False),
        ("9lives", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        ("tilde~ok", True),
    ],
)
def test_flag_keys_follow_the_key_rule(key: str, valid: bool) -> None:
    flag = Flag(key, Kind.BOOLEAN, BOOL)
    if valid:
        assert one(FlagConfig(), flag).key == key
    else:
        with pytest.raises(ModelError) as caught:
            one(FlagConfig(), flag)
        assert caught.value.pointer == f"/{key}/flag/key"


@pytest.mark.parametrize(
    ("flag", "config", "pointer"),
    [
        (
            Flag("f", Kind.BOOLEAN, (Variation("on", "yes"),)),
            FlagConfig(),
            "/f/flag/variations/0/value",
        ),
        (
            Flag("f", Kind.NUMBER, (Variation("n", True),)),
            FlagConfig(),
            "/f/flag/variations/0/value",
        ),
        (
            Flag("f", Kind.NUMBER, (Variation("n", float("nan")),)),
            FlagConfig(),
            "/f/flag/variations/0/value",
        ),
        (
            Flag("f", Kind.JSON, (Variation("j", {"a": {1}}),)),
            FlagConfig(),
            "/f/flag/variations/0/value",
        ),
        (
            Flag("f", Kind.BOOLEAN, (Variation("on", True), Variation("on", False))),
            FlagConfig(),
            "/f/flag/variations/1/key",
        ),
        (boolean("f"), FlagConfig(off_variation="maybe"), "/f/off_variation"),
        (
            boolean("f"),
            FlagConfig(targets=(Target("on", ("a",)), Target("off", ("a",)))),
            "/f/targets/1/keys/0",
        ),
        (boolean("f"), FlagConfig(fallthrough=Serve()), "/f/fallthrough"),
        (
            boolean("f"),
            FlagConfig(fallthrough=Serve(split=Split((("on", 50_000), ("off", 49_999))))),
            "/f/fallthrough/split/weights",
        ),
        (
            boolean("f"),
            FlagConfig(fallthrough=Serve(split=Split((("on", 100_000), ("x", 0))))),
            "/f/fallthrough/split/weights/1",
        ),
        (
            boolean("f"),
            FlagConfig(rules=(Rule((Clause("a", Operator.MATCHES, ("ok", "(?<=no)")),), ON),)),
            "/f/rules/0/clauses/0/values/1",
        ),
        (
            boolean("f"),
            FlagConfig(rules=(Rule((Clause("s", Operator.SEGMENT_MATCH, ("nope",)),), ON),)),
            "/f/rules/0/clauses/0/values/0",
        ),
        (
            boolean("f"),
            FlagConfig(rules=(Rule((), ON, gate=Gate(100_001)),)),
            "/f/rules/0/gate/percentage",
        ),
        (
            boolean("f"),
            FlagConfig(rules=(Rule((), OFF, gate=Gate(5, mode=BucketingMode.FLAGD_V2)),)),
            "/f/rules/0/gate/mode",
        ),
    ],
)
def test_invalid_flags_are_refused_with_a_pointer_to_the_field(
    flag: Flag, config: FlagConfig, pointer: str
) -> None:
    with pytest.raises(ModelError) as caught:
        compile_environment({"f": (flag, config)}, {})
    assert caught.value.pointer == pointer


def test_a_segment_cannot_match_segments() -> None:
    inner = Segment("s", rules=(SegmentRule((Clause("x", Operator.SEGMENT_MATCH, ("s",)),)),))
    with pytest.raises(ModelError) as caught:
        compile_environment({}, {"s": inner})
    assert caught.value.pointer == "/segments/s/rules/0/clauses/0/operator"


def test_compatible_modes_take_the_peers_weights() -> None:
    split = Split((("on", 1), ("off", 1)), mode=BucketingMode.FLAGD_V2)
    flag = one(FlagConfig(on=True, fallthrough=Serve(split=split)))
    # flagd v2 hashes flagKey + targetingKey: "flag" + key.
    assert evaluate(flag, {"targetingKey": "x"}).reason is Reason.SPLIT
    unleash = Split((("on", 500), ("off", 500)), mode=BucketingMode.UNLEASH_VARIANT, salt="flag")
    assert evaluate(
        one(FlagConfig(on=True, fallthrough=Serve(split=unleash))), {"targetingKey": "x"}
    ).variation in {"on", "off"}


def test_a_split_buckets_the_flag_key_dot_targeting_key() -> None:
    flag = one(FlagConfig(on=True, fallthrough=half()))
    custom = one(FlagConfig(on=True, fallthrough=half(salt="s", bucket_by=("team",))))
    for i in range(300):
        key = f"user-{i}"
        expected = "on" if bucket(salt_prefix("flag"), key) < 50_000 else "off"
        assert evaluate(flag, {"targetingKey": key}).variation == expected
        expected = "on" if bucket(salt_prefix("s"), key) < 50_000 else "off"
        assert evaluate(custom, {"team": key}).variation == expected


def rollout(percentage: int) -> CompiledFlag:
    weights = (("on", percentage), ("off", 100_000 - percentage))
    return one(FlagConfig(on=True, fallthrough=Serve(split=Split(weights))))


@given(st.text(max_size=30), st.integers(0, 100_000), st.integers(0, 100_000))
def test_raising_a_rollout_never_turns_a_user_off(key: str, low: int, high: int) -> None:
    low, high = sorted((low, high))
    if evaluate(rollout(low), {"targetingKey": key}).value is True:
        assert evaluate(rollout(high), {"targetingKey": key}).value is True


@pytest.mark.parametrize("percentage", [0, 100_000])
def test_0_and_100_percent_serve_nobody_and_everybody(percentage: int) -> None:
    flag = rollout(percentage)
    served = {evaluate(flag, {"targetingKey": f"u{i}"}).value for i in range(500)}
    assert served == {percentage == 100_000}
