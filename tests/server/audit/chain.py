"""Reading the audit chain and tampering with it the way someone with SQL access would."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select, text, update

from interlock.server.audit.models import AuditEntry
from interlock.server.audit.service import entry_hash
from interlock.server.db.base import utcnow
from interlock.server.db.engine import Database


def entries(db: Database) -> Sequence[AuditEntry]:
    """Every entry, oldest first."""
    with db.read_session() as session:
        return session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()


def last_seq(db: Database) -> int:
    with db.read_session() as session:
        return session.scalar(select(func.coalesce(func.max(AuditEntry.seq), 0))) or 0


def entries_after(db: Database, seq: int) -> Sequence[AuditEntry]:
    with db.read_session() as session:
        return session.scalars(
            select(AuditEntry).where(AuditEntry.seq > seq).order_by(AuditEntry.seq)
        ).all()


def run_sql(db: Database, *statements: str, **params: Any) -> None:
    """Raw SQL in one transaction, behind the service's back."""
    with db.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement), params)


def set_columns(db: Database, seq: int, **values: Any) -> None:
    """Overwrite columns of one entry, typed (datetimes, JSON) as the table declares them."""
    with db.engine.begin() as connection:
        connection.execute(update(AuditEntry).where(AuditEntry.seq == seq).values(**values))


def shift_seqs(db: Database, first: int, by: int) -> None:
    """Renumber every entry from `first` on by `by`, as a tamperer hiding a gap would.

    Through a detour far away, so no intermediate state breaks the unique seq.
    """
    run_sql(
        db,
        "UPDATE audit_entries SET seq = seq + 100000 WHERE seq >= :first",
        "UPDATE audit_entries SET seq = seq - 100000 + :by WHERE seq >= 100000",
        first=first,
        by=by,
    )


def forge(db: Database, seq: int, prev_hash: str, made_up_hash: str | None = None) -> str:
    """Insert a well-formed entry nobody made; its hash is right for its content unless made up.

    Returns the hash it was given.
    """
    entry = AuditEntry(
        seq=seq,
        at=utcnow(),
        actor_type="user",
        actor_id="1",
        actor_name="admin@localhost",
        action="project.delete",
        resource_type="project",
        resource_id="default",
        project_key="default",
        before={"key": "default"},
        after=None,
        request_id=None,
        prev_hash=prev_hash,
    )
    entry.hash = made_up_hash or entry_hash(prev_hash, entry)
    columns = {c.key: getattr(entry, c.key) for c in AuditEntry.__table__.columns if c.key != "id"}
    with db.engine.begin() as connection:
        connection.execute(insert(AuditEntry), [columns])
    return entry.hash
