from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from interlock.server.auth.roles import Role
from interlock.server.keys import Slug


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database.
    if "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return value


def _email(value: str) -> str:
    local, at, domain = value.strip().rpartition("@")
    if not at or not local or not domain or " " in value.strip():
        raise ValueError("not an email address")
    return value.strip().lower()


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None


# A moment in time: the offset is required (never guessed) and the value must exist in UTC.
Moment = Annotated[AwareDatetime, AfterValidator(_utc)]
Email = Annotated[
    str, Field(min_length=3, max_length=320), AfterValidator(_no_nul), AfterValidator(_email)
]
Label = Annotated[str, Field(max_length=200), AfterValidator(_no_nul)]
Password = Annotated[str, Field(min_length=12, max_length=1024)]


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Annotated[str, Field(min_length=1, max_length=320), AfterValidator(_no_nul)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class RoleBindingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    project: Slug | None = Field(None, description="None: the whole instance.")
    environment: Slug | None = Field(None, description="Needs project.")


class RoleBindingOut(BaseModel):
    role: Role
    project: str | None
    environment: str | None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    name: Label = ""
    password: Password
    roles: list[RoleBindingIn] = Field(default_factory=list, max_length=100)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Label | None = None
    active: bool | None = None
    password: Password | None = None
    roles: list[RoleBindingIn] | None = Field(None, max_length=100)


class UserOut(BaseModel):
    id: int
    email: str
    name: str
    active: bool
    created_at: datetime
    roles: list[RoleBindingOut]


class UserPage(BaseModel):
    items: list[UserOut]
    next_cursor: str | None


class SessionOut(BaseModel):
    user: UserOut
    csrf_token: str = Field(description="Send as X-CSRF-Token on every unsafe request.")
    expires_at: datetime


class Me(BaseModel):
    kind: str
    id: int
    name: str
    roles: list[RoleBindingOut]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[Label, Field(min_length=1)]
    role: Role
    project: Slug | None = Field(None, description="None: instance-wide (admin keys only).")
    environment: Slug | None = Field(None, description="Required for sdk-server/sdk-client.")
    expires_at: Moment | None = Field(None, description="With a UTC offset.")


class KeyRevoke(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: Moment | None = Field(
        None,
        description="Revoke at this time (with a UTC offset) instead of now, to roll out a "
        "replacement first.",
    )


class KeyOut(BaseModel):
    id: int
    name: str
    role: Role
    hint: str
    project: str | None
    environment: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    value: str | None = Field(
        None, description="The key itself: shown once on creation; always for sdk-client keys."
    )


class KeyPage(BaseModel):
    items: list[KeyOut]
    next_cursor: str | None
