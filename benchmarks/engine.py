"""Engine hot path: nanoseconds per evaluation for representative flags.

    .venv/bin/python benchmarks/engine.py [--number 200000] [--repeat 5]

Each row evaluates one compiled flag through `evaluate()` (the public entry point) and
through the compiled runner directly, with a fixed set of contexts cycled so hashing and
lookups see different keys; the figure is the best of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import itertools
import timeit
from collections.abc import Callable

import mmh3

from interlock.engine.compiler import compile_environment
from interlock.engine.evaluate import CompiledFlag, evaluate
from interlock.engine.model import (
    Clause,
    Flag,
    FlagConfig,
    Kind,
    Prerequisite,
    Rule,
    Segment,
    Serve,
    Split,
    Variation,
)
from interlock.engine.operators import Operator

BOOL = (Variation("on", True), Variation("off", False))
ON, OFF = Serve(variation="on"), Serve(variation="off")


def flags() -> dict[str, CompiledFlag]:
    def boolean(key: str) -> Flag:
        return Flag(key, Kind.BOOLEAN, BOOL)

    ten_rules = tuple(
        Rule(
            (
                Clause("role", Operator.IN, (f"role-{i}", f"other-{i}")),
                Clause("country", Operator.IN, ("NL", "BE", "DE")),
                Clause("version", Operator.SEMVER_GTE, ("2.0.0",)),
            ),
            ON,
            id=f"rule-{i}",
        )
        for i in range(10)
    )
    segment = Segment("big", included=frozenset(f"member-{i}" for i in range(10_000)))
    return compile_environment(
        {
            "plain-on": (boolean("plain-on"), FlagConfig(on=True, fallthrough=ON)),
            "split-25": (
                boolean("split-25"),
                FlagConfig(
                    on=True,
                    fallthrough=Serve(split=Split((("on", 25_000), ("off", 75_000)))),
                ),
            ),
            "ten-rules": (
                boolean("ten-rules"),
                FlagConfig(on=True, rules=ten_rules, fallthrough=OFF),
            ),
            "segment-10k": (
                boolean("segment-10k"),
                FlagConfig(
                    on=True,
                    rules=(Rule((Clause("s", Operator.SEGMENT_MATCH, ("big",)),), ON),),
                    fallthrough=OFF,
                ),
            ),
            "chain-3": (
                boolean("chain-3"),
                FlagConfig(
                    on=True, fallthrough=ON, prerequisites=(Prerequisite("chain-2", ("on",)),)
                ),
            ),
            "chain-2": (
                boolean("chain-2"),
                FlagConfig(
                    on=True, fallthrough=ON, prerequisites=(Prerequisite("chain-1", ("on",)),)
                ),
            ),
            "chain-1": (boolean("chain-1"), FlagConfig(on=True, fallthrough=ON)),
        },
        {"big": segment},
    )


ROWS = [
    ("plain on", "plain-on"),
    ("25 % split", "split-25"),
    ("10 rules x 3 clauses (no match)", "ten-rules"),
    ("segment of 10k keys", "segment-10k"),
    ("prerequisite chain of 3", "chain-3"),
]


def measure(call: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    compiled = flags()
    contexts = [
        {"targetingKey": f"member-{i * 7}", "role": "student", "country": "NL", "version": "2.1.0"}
        for i in range(1024)
    ]
    print(f"{'flag':<34} {'evaluate() ns':>14} {'runner ns':>10}")
    # DESIGN.md's yardstick (about 130 ns on this machine when idle): scales the rows below.
    members = frozenset({"a"})
    salted = "split-25.member-7"

    def reference() -> object:
        return "a" in members, mmh3.hash(salted, 0, False)

    noop = measure(lambda: None, args.number, args.repeat)
    yardstick = measure(reference, args.number, args.repeat) - noop
    print(f"{'(set lookup + murmur3 hash)':<34} {yardstick:>14.0f}")
    for label, key in ROWS:
        flag = compiled[key]
        run = flag.run
        cycle = itertools.cycle(contexts).__next__

        def public(
            flag: CompiledFlag = flag, cycle: Callable[[], dict[str, str]] = cycle
        ) -> object:
            return evaluate(flag, cycle())

        def direct(
            run: Callable[..., object] = run, cycle: Callable[[], dict[str, str]] = cycle
        ) -> object:
            return run(cycle(), None, None)

        def overhead(cycle: Callable[[], dict[str, str]] = cycle) -> object:
            return cycle()

        # Net of the benchmark's own function call and context rotation.
        baseline = measure(overhead, args.number, args.repeat)
        print(
            f"{label:<34} {measure(public, args.number, args.repeat) - baseline:>14.0f}"
            f" {measure(direct, args.number, args.repeat) - baseline:>10.0f}"
        )


if __name__ == "__main__":
    main()
