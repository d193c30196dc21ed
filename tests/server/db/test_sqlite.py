"""SQLite tuning: durable commits; write transactions wait their turn instead of failing."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from interlock.server.db.engine import BUSY_TIMEOUT_MS, Database


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "interlock.db"


@pytest.fixture
def db(path: Path) -> Iterator[Database]:
    """A tuned SQLite database with one counter row at 0."""
    database = Database(f"sqlite:///{path}")
    with database.write_session() as session:
        session.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        session.execute(text("INSERT INTO counter (id, n) VALUES (1, 0)"))
    yield database
    database.dispose()


def read_counter(session: Session) -> int:
    return int(session.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one())


def increment(session: Session) -> int:
    """Read, then write: the pattern a deferred transaction cannot survive under contention."""
    seen = read_counter(session)
    session.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": seen + 1})
    return seen


def raw_connection(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection in autocommit mode that never waits for a lock."""
    return sqlite3.connect(path, timeout=0, isolation_level=None)


@pytest.mark.parametrize(
    ("pragma", "expected"),
    [
        ("journal_mode", "wal"),
        ("synchronous", 2),  # FULL: a commit is on disk before it is acknowledged
        ("foreign_keys", 1),
        ("busy_timeout", BUSY_TIMEOUT_MS),
    ],
)
@pytest.mark.parametrize("kind", ["read", "write"])
def test_every_connection_is_tuned(db: Database, kind: str, pragma: str, expected: Any) -> None:
    sessions = {"read": db.read_session, "write": db.write_session}
    with sessions[kind]() as session:
        assert session.execute(text(f"PRAGMA {pragma}")).scalar() == expected


def test_a_write_session_holds_the_write_lock_from_its_first_statement(
    db: Database, path: Path
) -> None:
    with closing(raw_connection(path)) as other:
        with db.write_session() as session:
            read_counter(session)  # only a read so far, yet the write lock is held
            with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")


def test_a_read_session_never_takes_the_write_lock(db: Database, path: Path) -> None:
    with closing(raw_connection(path)) as other, db.read_session() as session:
        assert read_counter(session) == 0
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE counter SET n = 5 WHERE id = 1")
        other.execute("COMMIT")
        # The reader keeps its snapshot and is not disturbed by the writer.
        assert read_counter(session) == 0
    with db.read_session() as session:
        assert read_counter(session) == 5


def test_a_reader_works_while_a_writer_holds_its_transaction_open(db: Database) -> None:
    with db.write_session() as writer:
        writer.execute(text("UPDATE counter SET n = 7 WHERE id = 1"))
        with db.read_session() as reader:
            assert read_counter(reader) == 0  # the last committed value, without waiting
    with db.read_session() as reader:
        assert read_counter(reader) == 7


def test_two_read_then_write_sessions_both_succeed_the_second_waiting(db: Database) -> None:
    second_is_beginning = threading.Event()
    results: dict[str, Any] = {}

    def second_writer() -> None:
        try:
            with db.write_session() as session:
                results["seen"] = increment(session)
        except Exception as exc:  # reported by the assertion below, not lost in the thread
            results["error"] = exc

    second = threading.Thread(target=second_writer)

    @event.listens_for(db.engine, "before_cursor_execute")
    def _spy(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement == "BEGIN IMMEDIATE" and threading.current_thread() is second:
            second_is_beginning.set()

    with db.write_session() as session:
        assert read_counter(session) == 0
        second.start()
        assert second_is_beginning.wait(timeout=10)
        session.execute(text("UPDATE counter SET n = 1 WHERE id = 1"))
    second.join(timeout=20)

    assert not second.is_alive()
    assert "error" not in results, results
    assert results["seen"] == 1  # it read after the first committed: it waited its turn
    with db.read_session() as session:
        assert read_counter(session) == 2  # no lost update


def test_deferred_read_then_write_transactions_fail_at_once_whatever_the_busy_timeout(
    db: Database, path: Path
) -> None:
    # The contrast, with plain sqlite3 and a generous busy timeout: this is why write
    # sessions begin IMMEDIATE. The second reader's snapshot is stale once the first commits,
    # so SQLite refuses its write without waiting: retrying could never help.
    first = sqlite3.connect(path, timeout=10, isolation_level=None)
    second = sqlite3.connect(path, timeout=10, isolation_level=None)
    with closing(first), closing(second):
        first.execute("BEGIN")
        second.execute("BEGIN")
        (seen_by_first,) = first.execute("SELECT n FROM counter").fetchone()
        (seen_by_second,) = second.execute("SELECT n FROM counter").fetchone()
        first.execute("UPDATE counter SET n = ?", (seen_by_first + 1,))
        first.execute("COMMIT")
        with pytest.raises(sqlite3.OperationalError, match="database is locked") as failure:
            second.execute("UPDATE counter SET n = ?", (seen_by_second + 1,))
        assert failure.value.sqlite_errorname == "SQLITE_BUSY_SNAPSHOT"
        second.execute("ROLLBACK")
