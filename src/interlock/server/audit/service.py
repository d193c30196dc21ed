"""Appending to and verifying the hash chain.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's own canonical
content (sorted-key JSON of every field but the hashes). Appends happen inside the caller's
write transaction, which is serialized (BEGIN IMMEDIATE on SQLite, an advisory lock on
PostgreSQL), so two writers can never both extend the same head.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from interlock.server.audit.models import AuditEntry, AuditHead
from interlock.server.db.base import utcnow
from interlock.server.pagination import paginate

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it: a user, an API key, or the system itself (first start, jobs)."""

    type: str  # "user" | "key" | "system"
    id: str
    name: str
    request_id: str | None = None


SYSTEM = Actor(type="system", id="system", name="interlock")


def canonical(entry: AuditEntry) -> bytes:
    content = {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "actor_type": entry.actor_type,
        "actor_id": entry.actor_id,
        "actor_name": entry.actor_name,
        "action": entry.action,
        "resource_type": entry.resource_type,
        "resource_id": entry.resource_id,
        "project_key": entry.project_key,
        "before": entry.before,
        "after": entry.after,
        "request_id": entry.request_id,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode()


def entry_hash(prev_hash: str, entry: AuditEntry) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(entry)).hexdigest()


def record(
    session: Session,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: str,
    *,
    project_key: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's (write) transaction.

    The caller's write transaction already serializes appends; locking the head row as well
    keeps a caller that forgot from forking the chain (the unique seq catches the very first
    append, when there is no head row to lock).
    """
    head = session.get(AuditHead, 1, with_for_update=True)
    seq = head.seq + 1 if head else 1
    prev_hash = head.hash if head else GENESIS
    entry = AuditEntry(
        seq=seq,
        at=utcnow(),
        actor_type=actor.type,
        actor_id=actor.id,
        actor_name=actor.name,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        project_key=project_key,
        before=_plain(before),
        after=_plain(after),
        request_id=actor.request_id,
        prev_hash=prev_hash,
    )
    entry.hash = entry_hash(prev_hash, entry)
    session.add(entry)
    if head is None:
        session.add(AuditHead(id=1, seq=seq, hash=entry.hash))
    else:
        head.seq, head.hash = seq, entry.hash
    session.flush()
    return entry


def _plain(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """JSON round trip, so what is hashed is exactly what the database gives back."""
    if value is None:
        return None
    plain: dict[str, Any] = json.loads(json.dumps(value, default=str, sort_keys=True))
    return plain


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    problem: str | None = None
    seq: int | None = None
    # The last entry's hash: kept somewhere the database's writers cannot reach, it lets a
    # later run notice a log cut back to an earlier, self-consistent state.
    head_hash: str | None = None


# What decoding a stored value raises when someone wrote what the column never holds (SQLite
# keeps whatever it is given: text in a datetime column, broken JSON).
_UNREADABLE = (ValueError, TypeError, AttributeError)


def verify(session: Session, batch: int = 1000) -> VerifyResult:
    """Walk the chain in seq order and report the first entry that does not fit.

    Catches an edited or forged entry (its hash no longer matches its content, or its content
    cannot even be read), a removed, inserted or reordered one (a seq gap, a seq before 1 or
    twice, or a prev_hash that is not the previous entry's hash), and entries removed from or
    added past the end (the head no longer matches the last entry). Never raises on what it
    reads: whatever was written into the tables is reported, not crashed on. Reads one
    snapshot, so appends committed while it runs are never mistaken for tampering. Give it a
    session that has not begun a transaction.

    What it cannot catch: someone who can write to the database and recomputes the hashes
    (or rewrites the head after cutting the tail) leaves a chain that is consistent again.
    Comparing `head_hash` with a copy kept elsewhere catches that.
    """
    _read_one_snapshot(session)
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
    prev_hash, checked = GENESIS, 0
    last_seq: int | None = None
    size = batch
    while True:
        try:
            rows = _entries_after(session, last_seq, size)
        except _UNREADABLE as exc:
            if size > 1:
                size = 1  # find the unreadable row, checking the ones before it first
                continue
            seq = _next_seq(session, last_seq)
            return VerifyResult(
                False,
                checked,
                f"entry {seq} was edited: its stored content cannot be read ({exc})",
                seq if isinstance(seq, int) else None,
            )
        if not rows:
            break
        for row in rows:
            misfit = _misfit(row, checked + 1, prev_hash)
            if misfit is not None:
                problem, seq = misfit
                return VerifyResult(False, checked, problem, seq)
            prev_hash, checked, last_seq = row.hash, checked + 1, row.seq
    return _check_head(head, checked, prev_hash)


def _entries_after(session: Session, seq: int | None, limit: int) -> Sequence[Row[Any]]:
    """Plain rows, not ORM entities: a row with a NULL or repeated id is still checked."""
    statement = select(*AuditEntry.__table__.columns).order_by(AuditEntry.seq).limit(limit)
    # No lower bound on the first batch: a row forged with seq 0 or below must be seen.
    if seq is not None:
        statement = statement.where(AuditEntry.seq > seq)
    return session.execute(statement).all()


def _next_seq(session: Session, seq: int | None) -> Any:
    statement = select(AuditEntry.seq).order_by(AuditEntry.seq).limit(1)
    if seq is not None:
        statement = statement.where(AuditEntry.seq > seq)
    return session.scalar(statement)


def _read_one_snapshot(session: Session) -> None:
    """PostgreSQL reads each statement at its own time by default; ask for one snapshot.

    `Database.read_session()` gives one already; this covers any other fresh session verify
    is handed. SQLite's read transaction is a snapshot anyway (WAL), and setting an isolation
    level there would hand transaction control back to pysqlite.
    """
    if session.get_bind().dialect.name == "postgresql" and not session.in_transaction():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def _misfit(row: Row[Any], expected_seq: int, prev_hash: str) -> tuple[str, int] | None:
    """What is wrong with the row found where `expected_seq` should be, and which seq."""
    seq = row.seq
    if not isinstance(seq, int) or isinstance(seq, bool):
        return f"entry {expected_seq} was edited: its seq reads {seq!r}", expected_seq
    if seq < expected_seq:
        # Only a row before 1 or a second row with a seq (the unique index dropped) gets here.
        where = "comes before entry 1" if seq < 1 else "appears twice"
        return f"entry {seq} {where}: it was inserted", seq
    if seq > expected_seq:
        return f"entry {expected_seq} is missing: it was removed", expected_seq
    if row.prev_hash != prev_hash:
        return (
            f"entry {seq} does not follow entry {seq - 1}: "
            "an entry was removed, inserted or reordered here",
            seq,
        )
    try:
        recomputed = entry_hash(prev_hash, AuditEntry(**row._mapping))
    except _UNREADABLE as exc:
        return f"entry {seq} was edited: its stored content cannot be read ({exc})", seq
    if recomputed != row.hash:
        return f"entry {seq} was edited or forged: its hash does not match its content", seq
    return None


def _check_head(head: Row[int, str] | None, checked: int, last_hash: str) -> VerifyResult:
    tail = last_hash if checked else None
    if head is None:
        if checked:
            return VerifyResult(False, checked, "the chain's head record is missing", None, tail)
        return VerifyResult(True, 0)
    if not isinstance(head.seq, int) or isinstance(head.seq, bool):
        return VerifyResult(
            False, checked, f"the chain's head was edited: its seq reads {head.seq!r}", None, tail
        )
    if head.seq > checked:
        return VerifyResult(
            False,
            checked,
            f"{f'the chain ends at entry {checked}' if checked else 'the chain is empty'} "
            f"but its head says {head.seq}: entry {checked + 1} and any after it "
            "were removed from the end",
            checked + 1,
            tail,
        )
    if head.seq < checked:
        return VerifyResult(
            False,
            checked,
            f"entry {head.seq + 1} is past the chain's head (entry {head.seq}): it was inserted",
            head.seq + 1,
            tail,
        )
    if head.hash != last_hash:
        return VerifyResult(
            False,
            checked,
            f"entry {checked} is not the entry the chain's head recorded: "
            "it was replaced, or the head was edited",
            checked,
            tail,
        )
    return VerifyResult(True, checked, head_hash=tail)


def list_entries(
    session: Session,
    *,
    limit: int,
    cursor: str | None,
    project_key: str | None = None,
    action: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    actor_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[Sequence[AuditEntry], str | None]:
    """Newest first."""
    statement: Select[tuple[AuditEntry]] = select(AuditEntry)
    filters = (
        (AuditEntry.project_key, project_key),
        (AuditEntry.action, action),
        (AuditEntry.resource_type, resource_type),
        (AuditEntry.resource_id, resource_id),
        (AuditEntry.actor_id, actor_id),
    )
    for column, value in filters:
        if value is not None:
            statement = statement.where(column == value)
    if since is not None:
        statement = statement.where(AuditEntry.at >= since)
    if until is not None:
        statement = statement.where(AuditEntry.at < until)
    return paginate(
        session, statement, AuditEntry.seq, limit=limit, cursor=cursor, newest_first=True
    )
