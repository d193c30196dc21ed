"""Instance-wide facts that must be decided once (demo data loaded, admin created)."""

from __future__ import annotations

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from interlock.server.db.base import Base


class InstanceState(Base):
    __tablename__ = "instance_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(2000))


def get_state(session: Session, key: str) -> str | None:
    return session.scalar(select(InstanceState.value).where(InstanceState.key == key))


def set_state(session: Session, key: str, value: str) -> None:
    row = session.get(InstanceState, key)
    if row is None:
        session.add(InstanceState(key=key, value=value))
    else:
        row.value = value
