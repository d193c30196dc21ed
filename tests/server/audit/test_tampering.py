"""Tampering with the audit table directly, each way the issue names, and seeing it caught."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from interlock.server.audit.service import GENESIS, VerifyResult, verify
from interlock.server.db.engine import Database
from tests.helpers import assert_problem
from tests.server.audit.chain import entries, forge, run_sql, set_columns, shift_seqs

# Entries 1-3 are the first start's and the admin key's; 4-7 the projects made here.
LENGTH = 7


@pytest.fixture
def chain(admin: TestClient, db: Database) -> Database:
    """Seven entries, four of them written through the API."""
    for index in range(4):
        response = admin.post("/api/v1/projects", json={"key": f"p{index}", "name": f"P {index}"})
        assert response.status_code == 201, response.text
    assert [e.seq for e in entries(db)] == list(range(1, LENGTH + 1))
    return db


def hash_of(db: Database, seq: int) -> str:
    return next(e.hash for e in entries(db) if e.seq == seq)


def check(db: Database) -> VerifyResult:
    with db.read_session() as session:
        return verify(session)


def swap_seqs(db: Database, a: int, b: int) -> None:
    run_sql(
        db,
        "UPDATE audit_entries SET seq = -1 WHERE seq = :a",
        "UPDATE audit_entries SET seq = :a WHERE seq = :b",
        "UPDATE audit_entries SET seq = :b WHERE seq = -1",
        a=a,
        b=b,
    )


def remove_and_close_the_gap(db: Database) -> None:
    run_sql(db, "DELETE FROM audit_entries WHERE seq = 4")
    shift_seqs(db, 5, -1)
    run_sql(db, "UPDATE audit_head SET seq = seq - 1")


def insert_in_the_middle(db: Database, *, hash_right: bool) -> None:
    shift_seqs(db, 4, 1)
    run_sql(db, "UPDATE audit_head SET seq = seq + 1")
    forge(db, 4, hash_of(db, 3), None if hash_right else "f" * 64)


def replace_the_last(db: Database) -> None:
    prev = hash_of(db, LENGTH - 1)
    run_sql(db, "DELETE FROM audit_entries WHERE seq = :s", s=LENGTH)
    forge(db, LENGTH, prev)


@dataclass(frozen=True)
class Tamper:
    name: str
    apply: Callable[[Database], object]
    seq: int  # the entry verify must name
    says: str  # a word of the problem


TAMPERS = [
    Tamper(
        "an actor renamed",
        lambda db: run_sql(
            db, "UPDATE audit_entries SET actor_name = 'someone else' WHERE seq = 4"
        ),
        4,
        "edited",
    ),
    Tamper(
        "a time moved back",
        lambda db: set_columns(db, 4, at=datetime(2000, 1, 1, tzinfo=UTC)),
        4,
        "edited",
    ),
    Tamper(
        "a nested value changed, keys reordered",
        lambda db: set_columns(
            db, 5, after={"name": "P 1", "key": "p1", "environments": ["development"]}
        ),
        5,
        "edited",
    ),
    Tamper(
        "a hash replaced",
        lambda db: run_sql(db, f"UPDATE audit_entries SET hash = '{'a' * 64}' WHERE seq = 5"),
        5,
        "edited",
    ),
    Tamper(
        "an entry removed in the middle",
        lambda db: run_sql(db, "DELETE FROM audit_entries WHERE seq = 4"),
        4,
        "removed",
    ),
    Tamper("an entry removed and the seqs closed up", remove_and_close_the_gap, 4, "removed"),
    Tamper(
        "an entry inserted with a made-up hash",
        lambda db: insert_in_the_middle(db, hash_right=False),
        4,
        "forged",
    ),
    Tamper(
        "an entry inserted with a hash right for its content",
        lambda db: insert_in_the_middle(db, hash_right=True),
        5,
        "inserted",
    ),
    Tamper(
        "an entry inserted before the first",
        lambda db: forge(db, 0, GENESIS),
        0,
        "inserted",
    ),
    Tamper(
        "an entry inserted past the end",
        lambda db: forge(db, LENGTH + 1, hash_of(db, LENGTH)),
        LENGTH + 1,
        "inserted",
    ),
    Tamper("two entries reordered", lambda db: swap_seqs(db, 4, 5), 4, "reordered"),
    Tamper("the first and last swapped", lambda db: swap_seqs(db, 1, LENGTH), 1, "reordered"),
    Tamper(
        "the tail removed",
        lambda db: run_sql(db, "DELETE FROM audit_entries WHERE seq > 5"),
        6,
        "removed from the end",
    ),
    Tamper(
        "every entry removed",
        lambda db: run_sql(db, "DELETE FROM audit_entries"),
        1,
        "removed from the end",
    ),
    Tamper(
        "the last entry replaced by a well-formed forgery", replace_the_last, LENGTH, "replaced"
    ),
    Tamper(
        "the head's hash edited",
        lambda db: run_sql(db, f"UPDATE audit_head SET hash = '{'b' * 64}'"),
        LENGTH,
        "head",
    ),
]


def test_an_intact_chain_passes(chain: Database, admin: TestClient) -> None:
    result = check(chain)
    assert result == VerifyResult(True, LENGTH, head_hash=hash_of(chain, LENGTH))
    response = admin.get("/api/v1/audit/verify")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "ok": True,
        "checked": LENGTH,
        "problem": None,
        "seq": None,
        "head_hash": hash_of(chain, LENGTH),
    }


@pytest.mark.parametrize("tamper", TAMPERS, ids=lambda t: t.name)
def test_tampering_is_caught_at_the_first_entry_that_does_not_fit(
    chain: Database, admin: TestClient, tamper: Tamper
) -> None:
    tamper.apply(chain)
    result = check(chain)
    assert not result.ok
    assert result.seq == tamper.seq, result.problem
    assert result.problem is not None
    assert f"entry {tamper.seq}" in result.problem
    assert tamper.says in result.problem
    response = admin.get("/api/v1/audit/verify")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["ok"], body["seq"], body["problem"]) == (False, tamper.seq, result.problem)


def loosen_the_table(db: Database) -> None:
    """Rebuild audit_entries without its constraints: no primary key, unique seq or NOT NULL."""
    run_sql(
        db,
        "CREATE TABLE loose AS SELECT * FROM audit_entries",
        "DROP TABLE audit_entries",
        "ALTER TABLE loose RENAME TO audit_entries",
    )


def duplicate_a_seq(db: Database) -> None:
    loosen_the_table(db)
    forge(db, 5, hash_of(db, 4))


def null_a_time(db: Database) -> None:
    loosen_the_table(db)
    run_sql(db, "UPDATE audit_entries SET at = NULL WHERE seq = 6")


# Values no column of theirs would hold, which SQLite stores all the same. SQLite only: each
# test has its own copy of the file, so rebuilding a table there harms no other test.
GARBAGE = [
    Tamper(
        "a time that is not one",
        lambda db: run_sql(db, "UPDATE audit_entries SET at = 'garbage' WHERE seq = 4"),
        4,
        "cannot be read",
    ),
    Tamper(
        "a snapshot that is not JSON",
        lambda db: run_sql(db, "UPDATE audit_entries SET before = '{not json' WHERE seq = 5"),
        5,
        "cannot be read",
    ),
    Tamper(
        "a seq that is not a number",
        lambda db: run_sql(db, f"UPDATE audit_entries SET seq = 'x' WHERE seq = {LENGTH}"),
        LENGTH,
        "'x'",
    ),
    Tamper(
        "a head seq that is not a number",
        lambda db: run_sql(db, "UPDATE audit_head SET seq = 'x'"),
        -1,
        "head was edited",
    ),
    Tamper("a seq twice, its unique index dropped", duplicate_a_seq, 5, "entry 5 appears twice"),
    Tamper("a time removed, NOT NULL dropped", null_a_time, 6, "cannot be read"),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("tamper", GARBAGE, ids=lambda t: t.name)
def test_garbage_written_into_the_table_is_reported_not_crashed_on(
    chain: Database, admin: TestClient, tamper: Tamper
) -> None:
    tamper.apply(chain)
    result = check(chain)
    assert not result.ok
    assert result.problem is not None and tamper.says in result.problem
    if tamper.seq > 0:
        assert result.seq == tamper.seq
        assert f"entry {tamper.seq}" in result.problem
    response = admin.get("/api/v1/audit/verify")
    assert response.status_code == 200, response.text
    assert response.json()["problem"] == result.problem


def test_a_missing_head_is_caught(chain: Database) -> None:
    run_sql(chain, "DELETE FROM audit_head")
    result = check(chain)
    assert not result.ok
    assert result.problem is not None and "head" in result.problem


def test_a_cut_tail_with_a_rewritten_head_shows_only_in_the_head_hash(chain: Database) -> None:
    """The documented limit: a writer who also fixes up the head leaves a consistent chain.

    What is left to catch it is the head hash kept elsewhere, which no longer matches.
    """
    kept = check(chain).head_hash
    run_sql(chain, "DELETE FROM audit_entries WHERE seq > 5")
    run_sql(chain, "UPDATE audit_head SET seq = 5, hash = :h", h=hash_of(chain, 5))
    result = check(chain)
    assert result.ok
    assert result.head_hash != kept


def test_project_admins_may_not_verify_the_whole_chain(client: TestClient, db: Database) -> None:
    from interlock.server.auth import service as auth
    from interlock.server.auth.roles import Role
    from interlock.server.projects import service as projects
    from tests.helpers import TEST_ACTOR

    with db.write_session() as session:
        project = projects.get_project(session, "default")
        _, value = auth.create_key(
            session, TEST_ACTOR, name="project admin", role=Role.ADMIN, project=project
        )
    response = client.get("/api/v1/audit/verify", headers={"Authorization": f"Bearer {value}"})
    assert_problem(response, 403, "forbidden")


# ---------------------------------------------------------------- the command line


def interlock_verify(database_url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "INTERLOCK_DATABASE_URL": database_url,
        "INTERLOCK_DATA_DIR": str(data_dir),
        "INTERLOCK_SECRET_KEY": "test-secret-key-not-for-production",
    }
    command = [str(Path(sys.executable).parent / "interlock"), "audit", "verify"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "tamper",
    [None, next(t for t in TAMPERS if t.name == "an actor renamed")],
    ids=lambda t: t.name if t else "intact",
)
def test_interlock_audit_verify_exits_non_zero_naming_the_entry(
    chain: Database, database_url: str, tmp_path: Path, tamper: Tamper | None
) -> None:
    if tamper is not None:
        tamper.apply(chain)
    finished = interlock_verify(database_url, tmp_path)
    if tamper is None:
        assert finished.returncode == 0, finished.stderr
        assert f"intact: {LENGTH} entries" in finished.stdout
    else:
        assert finished.returncode != 0, finished.stdout
        assert f"entry {tamper.seq}" in finished.stdout + finished.stderr
