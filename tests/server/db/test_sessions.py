"""Read and write sessions behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from interlock.server.db.engine import Database
from interlock.server.db.state import get_state, set_state


def test_a_read_session_reads_one_snapshot_while_writers_commit(db: Database) -> None:
    with db.read_session() as reader:
        assert get_state(reader, "snapshot") is None
        with db.write_session() as writer:
            set_state(writer, "snapshot", "committed")
        assert get_state(reader, "snapshot") is None
    with db.read_session() as reader:
        assert get_state(reader, "snapshot") == "committed"


def test_a_write_session_rolls_back_everything_on_an_exception(db: Database) -> None:
    with pytest.raises(RuntimeError), db.write_session() as writer:
        set_state(writer, "rolled-back", "yes")
        writer.flush()
        raise RuntimeError("boom")
    with db.read_session() as reader:
        assert get_state(reader, "rolled-back") is None


def test_a_write_session_sees_what_committed_before_it_began(db: Database) -> None:
    with db.write_session() as first:
        set_state(first, "counter", "1")
    with db.write_session() as second:
        assert get_state(second, "counter") == "1"
        set_state(second, "counter", "2")
    with db.read_session() as reader:
        assert get_state(reader, "counter") == "2"


def test_the_backend_is_named(db: Database) -> None:
    assert db.backend in {"sqlite", "postgresql"}
    assert db.is_sqlite == (db.backend == "sqlite")
