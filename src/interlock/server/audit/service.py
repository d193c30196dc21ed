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

from sqlalchemy import Select, select
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
    """Append one entry in the caller's (write) transaction."""
    head = session.get(AuditHead, 1)
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


def verify(session: Session, batch: int = 1000) -> VerifyResult:
    """Walk the chain in seq order and report the first entry that does not fit.

    Catches an edited entry (its hash no longer matches its content), a removed or inserted
    one (a seq gap or a prev_hash that is not the previous hash), a reordered pair, and a
    truncated tail (the head no longer matches the last entry).
    """
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    last_seq = 0
    while True:
        rows = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.seq > last_seq)
            .order_by(AuditEntry.seq)
            .limit(batch)
        ).all()
        if not rows:
            break
        for entry in rows:
            if entry.seq != expected_seq:
                what = "removed" if entry.seq > expected_seq else "inserted"
                return VerifyResult(
                    False, checked, f"entry {expected_seq} is missing ({what}?)", expected_seq
                )
            if entry.prev_hash != prev_hash:
                return VerifyResult(
                    False,
                    checked,
                    f"entry {entry.seq} does not follow entry {entry.seq - 1} "
                    "(removed, inserted or reordered)",
                    entry.seq,
                )
            if entry_hash(prev_hash, entry) != entry.hash:
                return VerifyResult(
                    False,
                    checked,
                    f"entry {entry.seq} was edited: its hash does not match",
                    entry.seq,
                )
            prev_hash, expected_seq, checked = entry.hash, expected_seq + 1, checked + 1
            last_seq = entry.seq
    head = session.get(AuditHead, 1)
    if head is None and checked:
        return VerifyResult(False, checked, "the chain's head record is missing", None)
    if head is not None and (head.seq != checked or head.hash != prev_hash):
        return VerifyResult(
            False,
            checked,
            f"the chain ends at entry {checked} but its head says {head.seq}: "
            "entries were removed from the end, or the head was edited",
            checked + 1,
        )
    return VerifyResult(True, checked)


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
