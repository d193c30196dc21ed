"""Concurrent writers cannot fork the chain: appends are serialized, seqs stay contiguous."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event

from interlock.server.audit.service import verify
from interlock.server.db.engine import Database
from interlock.server.projects import service as projects
from tests.helpers import TEST_ACTOR
from tests.server.audit.chain import entries, last_seq

THREADS = 8
PER_WRITER = 10


def create_projects(db: Database, prefix: str, start: threading.Barrier | None = None) -> None:
    if start is not None:
        start.wait(timeout=30)
    for index in range(PER_WRITER):
        with db.write_session() as session:
            projects.create_project(session, TEST_ACTOR, key=f"{prefix}-{index}", name=prefix)


def assert_intact_and_contiguous(db: Database, expected: int) -> None:
    seqs = [e.seq for e in entries(db)]
    assert seqs == list(range(1, expected + 1))
    with db.read_session() as session:
        result = verify(session)
    assert result.ok, result.problem
    assert result.checked == expected


def test_concurrent_threads_append_one_unforked_chain(db: Database) -> None:
    before = last_seq(db)
    start = threading.Barrier(THREADS)
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(create_projects, db, f"t{n}", start) for n in range(THREADS)]
        for future in futures:
            future.result()  # re-raises "database is locked" or a seq conflict
    assert_intact_and_contiguous(db, before + THREADS * PER_WRITER)


def write_from_another_process(url: str, prefix: str, start: threading.Barrier) -> None:
    database = Database(url)
    try:
        create_projects(database, prefix, start)
    finally:
        database.dispose()


# PostgreSQL only: on SQLite, threads already write through separate connections, and file
# locking between connections does not care whether they share a process.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_concurrent_processes_append_one_unforked_chain(db: Database, database_url: str) -> None:
    before = last_seq(db)
    # spawn, not fork: the parent holds pooled connections and threads.
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [
        context.Process(target=write_from_another_process, args=(database_url, f"p{n}", start))
        for n in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0]
    assert_intact_and_contiguous(db, before + 2 * PER_WRITER)


def test_verify_reads_one_snapshot_while_appends_commit(db: Database) -> None:
    """An append committed between verify's reads is not mistaken for tampering."""
    before = last_seq(db)
    appended = threading.Event()

    def append_once(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        # After verify's first read (BEGIN alone does not start a snapshot on either database).
        if appended.is_set() or not statement.lstrip().upper().startswith("SELECT"):
            return
        appended.set()
        # On another connection, committed before verify's next statement.
        writer = threading.Thread(target=create_projects, args=(db, "late"))
        writer.start()
        writer.join(timeout=30)

    event.listen(db.engine, "after_cursor_execute", append_once)
    try:
        with db.read_session() as session:
            result = verify(session, batch=1)
    finally:
        event.remove(db.engine, "after_cursor_execute", append_once)
    assert appended.is_set()
    assert last_seq(db) == before + PER_WRITER
    assert result.ok, result.problem
    assert result.checked == before
    assert_intact_and_contiguous(db, before + PER_WRITER)
