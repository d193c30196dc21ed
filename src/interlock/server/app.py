"""create_app(settings): the only place that wires the service together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

import interlock
from interlock.server.audit.api import router as audit_router
from interlock.server.auth.api import router as auth_router
from interlock.server.db import migrate
from interlock.server.db.engine import Database
from interlock.server.errors import install_problem_handlers
from interlock.server.jobs.api import router as jobs_router
from interlock.server.jobs.runner import Runner
from interlock.server.jobs.system import JobSystem
from interlock.server.logs import configure_logging
from interlock.server.middleware import BodyGuardMiddleware, EdgeMiddleware
from interlock.server.openapi import install_openapi
from interlock.server.ops.api import router as ops_router
from interlock.server.ops.metrics import MetricsMiddleware
from interlock.server.projects.api import router as projects_router
from interlock.server.ratelimit import RateLimiter
from interlock.server.settings import Settings, load_settings

log = structlog.get_logger("interlock")

# Routes whose request bodies must be JSON (415 otherwise).
JSON_API_PREFIXES = ("/api/",)


def create_app(settings: Settings, db: Database | None = None) -> FastAPI:
    """Build the service. Refuses (SchemaOutdated) a database whose schema is not current."""
    database = db or Database(settings.effective_database_url)
    migrate.require_current_schema(database.engine)
    jobs = JobSystem(settings, database)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runner = None
        if settings.jobs_runner or (settings.jobs_runner is None and settings.embedded):
            # Embedded mode: jobs run in this process, no second command needed.
            runner = Runner(jobs, concurrency=settings.jobs_concurrency, embedded=True)
            runner.start()
        yield
        if runner is not None:
            runner.stop(timeout=settings.shutdown_grace_seconds)
        jobs.close()
        if db is None:
            database.dispose()

    app = FastAPI(
        title="interlock",
        version=interlock.__version__,
        summary="Feature flags, experiments and progressive delivery.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.secret_key = settings.resolved_secret_key()
    app.state.limiter = RateLimiter(settings.redis_url)
    app.state.jobs = jobs

    install_problem_handlers(app)
    install_openapi(app, JSON_API_PREFIXES)
    app.include_router(ops_router)
    app.include_router(auth_router)
    app.include_router(projects_router)
    app.include_router(audit_router)
    app.include_router(jobs_router)

    # Outermost last: the edge sees every response (including a 500), metrics see the route.
    app.add_middleware(
        BodyGuardMiddleware, max_body_bytes=settings.max_body_bytes, json_prefixes=JSON_API_PREFIXES
    )
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(EdgeMiddleware)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (each worker process builds its own app)."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
