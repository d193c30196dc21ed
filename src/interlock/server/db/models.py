"""Imports every domain's tables, so metadata is complete for Alembic and tests."""

from interlock.server.audit.models import AuditEntry, AuditHead
from interlock.server.auth.models import ApiKey, LoginSession, RoleBinding, User
from interlock.server.db.base import Base
from interlock.server.db.state import InstanceState
from interlock.server.jobs.models import Job, JobEvent, JobWorker
from interlock.server.projects.models import Environment, Project

__all__ = [
    "ApiKey",
    "AuditEntry",
    "AuditHead",
    "Base",
    "Environment",
    "InstanceState",
    "Job",
    "JobEvent",
    "JobWorker",
    "LoginSession",
    "Project",
    "RoleBinding",
    "User",
]
