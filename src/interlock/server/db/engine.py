"""Engines and sessions: SQLite tuned for durability, PostgreSQL through psycopg 3.

Write transactions are opened with `write_session()`. On SQLite that issues BEGIN IMMEDIATE:
a deferred transaction that reads and then writes fails with "database is locked" at once
when another writer got there first, whatever the busy timeout, while an immediate one waits
its turn. Reads use `read_session()` and never take the write lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

BUSY_TIMEOUT_MS = 10_000
# One constant key for pg_advisory_xact_lock: every write that appends to the audit chain
# or bumps a revision takes it, so such writes commit in the order they were serialized.
WRITE_LOCK_KEY = 0x1A7E_10C4
# Execution option that marks a connection's transactions as writes (BEGIN IMMEDIATE on SQLite).
WRITE_OPTION = "interlock_write"


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            **kwargs,
        )
        _tune_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN is ours to issue.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged commit survives power loss, not only a process crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """The engine plus the two kinds of session the service uses."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.engine = make_engine(url, **engine_kwargs)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        write_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        # SQLite's read transaction is a snapshot already (WAL); PostgreSQL's default reads
        # each statement at its own time, so a page and its total, or the audit chain and its
        # head, could disagree there while agreeing on SQLite.
        read_engine = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="REPEATABLE READ")
        )
        self._read = sessionmaker(read_engine, expire_on_commit=False)
        self._write = sessionmaker(write_engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """Reads from one consistent snapshot, on both backends, without taking the write lock.

        Writes do not belong here: a read session that writes is not serialized with the
        other writers (and on SQLite fails at once if one committed since it began).
        """
        with self._read() as session:
            yield session

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any exception.

        Writers are serialized: BEGIN IMMEDIATE on SQLite, a transaction-scoped advisory
        lock on PostgreSQL, so audit appends and revision bumps cannot interleave.
        """
        with self._write() as session, session.begin():
            if not self.is_sqlite:
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK_KEY})
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
