"""First start: schema, the default project, the first admin, demo data. Idempotent."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select

from interlock.server.audit.service import SYSTEM
from interlock.server.auth import service as auth
from interlock.server.auth.models import User
from interlock.server.auth.roles import Role
from interlock.server.db import migrate
from interlock.server.db.engine import Database
from interlock.server.db.state import get_state, set_state
from interlock.server.projects import service as projects
from interlock.server.settings import Settings

DEFAULT_PROJECT = "default"
ADMIN_EMAIL = "admin@localhost"
DEMO_PROJECTS = (
    ("university-portal", "University portal", "Demo: a portal for students, alumni and faculty."),
    ("dispute-tool", "Dispute tool", "Demo: a tool that prepares and submits disputes."),
)


@dataclass(frozen=True, slots=True)
class FirstStart:
    admin_email: str | None = None
    admin_password: str | None = None
    demo_loaded: bool = False


def prepare_schema(settings: Settings, db: Database) -> None:
    """Embedded mode migrates by itself; PostgreSQL must be upgraded explicitly."""
    if settings.embedded:
        migrate.upgrade(db.engine)
    else:
        migrate.require_current_schema(db.engine)


def ensure_initial_data(settings: Settings, db: Database) -> FirstStart:
    """Create what a fresh instance needs; returns the admin login if one was just made."""
    admin_email = admin_password = None
    demo_loaded = False
    with db.write_session() as session:
        if projects.find_project(session, DEFAULT_PROJECT) is None:
            projects.create_project(session, SYSTEM, key=DEFAULT_PROJECT, name="Default")
        if session.scalar(select(func.count()).select_from(User)) == 0:
            admin_email, admin_password = ADMIN_EMAIL, secrets.token_urlsafe(15)
            auth.create_user(
                session,
                SYSTEM,
                email=admin_email,
                password=admin_password,
                name="Administrator",
                bindings=[auth.Binding(Role.ADMIN)],
                password_cost=settings.password_hash_cost,
            )
        if settings.load_demo_data and get_state(session, "demo_loaded") is None:
            for key, name, description in DEMO_PROJECTS:
                if projects.find_project(session, key) is None:
                    projects.create_project(
                        session, SYSTEM, key=key, name=name, description=description
                    )
            set_state(session, "demo_loaded", "1")
            demo_loaded = True
    return FirstStart(admin_email, admin_password, demo_loaded)


def prepare(settings: Settings, db: Database) -> FirstStart:
    prepare_schema(settings, db)
    return ensure_initial_data(settings, db)
