from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from interlock.server.keys import Description, Name, Slug


class EnvironmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: Slug
    name: Name
    position: int | None = Field(None, ge=0, description="Place in the order; default last.")


class EnvironmentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    position: int | None = Field(None, ge=0)


class EnvironmentOut(BaseModel):
    key: str
    name: str
    position: int
    version: int
    created_at: datetime
    updated_at: datetime


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: Slug
    name: Name
    description: Description = ""
    environments: list[EnvironmentCreate] | None = Field(
        None,
        min_length=1,
        max_length=50,
        description="Default: development, staging, production.",
    )


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    description: Description | None = None


class ProjectOut(BaseModel):
    key: str
    name: str
    description: str
    version: int
    created_at: datetime
    updated_at: datetime
    environments: list[EnvironmentOut]


class ProjectPage(BaseModel):
    items: list[ProjectOut]
    next_cursor: str | None


class EnvironmentPage(BaseModel):
    items: list[EnvironmentOut]
    next_cursor: str | None
