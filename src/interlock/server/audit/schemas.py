from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    actor_type: str
    actor_id: str
    actor_name: str
    action: str
    resource_type: str
    resource_id: str
    project: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None


class AuditVerification(BaseModel):
    ok: bool
    checked: int = Field(description="Entries found intact before the first problem.")
    problem: str | None = Field(description="What is wrong, naming the entry; null when ok.")
    seq: int | None = Field(description="The seq of the entry that does not fit.")
    head_hash: str | None = Field(
        description="The last entry's hash; compare with a copy kept outside the database."
    )
