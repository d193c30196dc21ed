"""PostgreSQL: write sessions take one advisory lock, so they commit one after the other."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, event, text

from interlock.server.db.engine import WRITE_LOCK_KEY, Database
from interlock.server.db.state import InstanceState, get_state, set_state


@pytest.fixture
def db(postgres_schema_url: str) -> Iterator[Database]:
    database = Database(postgres_schema_url)
    yield database
    database.dispose()


@pytest.fixture
def state_key(db: Database) -> Iterator[str]:
    key = f"test-{uuid.uuid4().hex}"
    yield key
    with db.write_session() as session:
        session.execute(delete(InstanceState).where(InstanceState.key == key))


def wait_until_blocked_on_advisory_lock(db: Database, pid: int, timeout: float = 10) -> None:
    """Poll the server until backend `pid` waits for the write lock (a state, not a delay)."""
    deadline = time.monotonic() + timeout
    query = text(
        "SELECT count(*) FROM pg_locks WHERE pid = :pid AND locktype = 'advisory'"
        " AND NOT granted AND objid = :objid"
    )
    with db.engine.connect() as connection:
        while time.monotonic() < deadline:
            if connection.execute(query, {"pid": pid, "objid": WRITE_LOCK_KEY}).scalar():
                return
            connection.rollback()
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for the write lock")


def test_a_second_write_session_waits_until_the_first_commits(db: Database, state_key: str) -> None:
    second_pid: list[int] = []
    second_is_locking = threading.Event()
    results: dict[str, Any] = {}

    def second_writer() -> None:
        try:
            with db.write_session() as session:
                results["seen"] = get_state(session, state_key)
                set_state(session, state_key, "second")
        except Exception as exc:  # reported by the assertion below, not lost in the thread
            results["error"] = exc

    second = threading.Thread(target=second_writer)

    @event.listens_for(db.engine, "before_cursor_execute")
    def _spy(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "pg_advisory_xact_lock" in statement and threading.current_thread() is second:
            second_pid.append(conn.connection.dbapi_connection.info.backend_pid)
            second_is_locking.set()

    with db.write_session() as session:
        set_state(session, state_key, "first")
        session.flush()
        second.start()
        assert second_is_locking.wait(timeout=10), results
        wait_until_blocked_on_advisory_lock(db, second_pid[0])
        assert "seen" not in results  # blocked before reading anything
    second.join(timeout=20)

    assert not second.is_alive()
    assert "error" not in results, results
    assert results["seen"] == "first"  # it ran after the first committed
    with db.read_session() as session:
        assert get_state(session, state_key) == "second"


def test_a_read_session_does_not_wait_for_a_writer(db: Database, state_key: str) -> None:
    with db.write_session() as writer:
        set_state(writer, state_key, "uncommitted")
        writer.flush()
        with db.read_session() as reader:
            assert get_state(reader, state_key) is None
    with db.read_session() as reader:
        assert get_state(reader, state_key) == "uncommitted"
