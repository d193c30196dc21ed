"""kill -9 a real server while it writes: acknowledged changes survive, none is half-written.

The short run of benchmarks/crash_durability.py (which runs 20 kills or more per database).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from benchmarks import crash_durability
from sqlalchemy import create_engine, text

KILLS = 3


def _postgres_reachable() -> str | None:
    engine = create_engine(
        crash_durability.DEFAULT_POSTGRES_URL, connect_args={"connect_timeout": 3}
    )
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return str(exc).splitlines()[0]
    finally:
        engine.dispose()
    return None


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_acknowledged_changes_survive_kill_9_and_none_is_half_written(
    database: str, tmp_path: Path
) -> None:
    if database == "postgresql" and (reason := _postgres_reachable()):
        pytest.skip(f"PostgreSQL leg skipped: not reachable ({reason})")
    report = crash_durability.run(database, kills=KILLS, seed=7, workdir=tmp_path)

    assert report.acknowledged > 0
    assert report.problems == []
    assert (report.lost, report.half_written) == (0, 0)
    assert report.found == report.acknowledged
    assert report.kills_survived == KILLS
    assert report.integrity == ("ok" if database == "sqlite" else "n/a")
    assert report.audit_verify == "ok"


# The checker itself, on made-up states: it must notice what it is there to notice.

Change = crash_durability.Change
State = tuple[dict[str, tuple[str, int]], set[tuple[str, str]], list[crash_durability.Entry]]
CREATED: crash_durability.Entry = ("project.create", "p1", {"environments": ["e0", "e1"]})
WHOLE: State = (
    {"p1": ("p1", 2)},
    {("p1", "e0"), ("p1", "e1"), ("p1", "x1")},
    [
        CREATED,
        ("environment.create", "p1/x1", {}),
        ("project.update", "p1", {"name": "p1", "version": 2}),
    ],
)


@pytest.mark.parametrize(
    ("state", "complaint"),
    [
        (({"p1": ("p1", 1)}, {("p1", "e0"), ("p1", "e1")}, []), "creation entries"),
        (({}, set(), [CREATED]), "which does not exist"),
        (({"p1": ("p1", 1)}, {("p1", "e0")}, [CREATED]), "lacks environment e1"),
        (
            ({"p1": ("p1", 1)}, {("p1", "e0"), ("p1", "e1"), ("p1", "x1")}, [CREATED]),
            "no single audit entry",
        ),
        (({"p1": ("p1", 2)}, {("p1", "e0"), ("p1", "e1")}, [CREATED]), "with 0 updates"),
    ],
    ids=["no-entry", "no-project", "missing-env", "env-without-entry", "bump-without-entry"],
)
def test_the_checker_reports_a_half_written_change(state: Any, complaint: str) -> None:
    assert crash_durability.half_written(*WHOLE) == []
    problems = crash_durability.half_written(*state)
    assert any(complaint in problem for problem in problems), problems


def test_the_checker_reports_an_acknowledged_change_that_is_missing() -> None:
    acked = [
        Change("project", "p1", "p1", ("e0", "e1"), outcome="acked"),
        Change("environment", "p1", "x1", outcome="acked"),
        Change("rename", "p1", "p1", outcome="acked", version=2),
    ]
    assert crash_durability.lost_changes(acked, *WHOLE) == []
    missing = [
        Change("environment", "p1", "x2", outcome="acked"),
        Change("rename", "p1", "other", outcome="acked", version=3),
        Change("project", "p2", "p2", ("e0",), outcome="acked"),
        Change("project", "p3", "p3", ("e0",), outcome="unknown"),
    ]
    assert crash_durability.lost_changes(missing, *WHOLE) == [
        "environment p1/x2",
        "rename of p1 to other",
        "project p2",
    ]


def test_the_checker_counts_changes_that_committed_without_an_answer() -> None:
    unanswered = [
        Change("environment", "p1", "x1", outcome="unknown"),
        Change("rename", "p1", "p1", outcome="unknown"),
        Change("environment", "p1", "x9", outcome="unknown"),
        Change("project", "p1", "p1", ("e0", "e1"), outcome="unsent"),
    ]
    assert crash_durability.applied_unanswered(unanswered, *WHOLE) == 2
