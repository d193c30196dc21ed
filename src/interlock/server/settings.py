"""All configuration of the service, read from INTERLOCK_* environment variables and .env."""

from __future__ import annotations

import secrets
from enum import StrEnum
from pathlib import Path
from typing import Any

from limits import parse as parse_rate_limit
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_KEY_FILE = "secret_key"
DATABASE_FILE = "interlock.db"


class LogFormat(StrEnum):
    CONSOLE = "console"
    JSON = "json"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def _rate_limit(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    assert value is not None
    try:
        parse_rate_limit(value)
    except ValueError as exc:
        raise ValueError(f"not a rate limit like '600/minute': {value!r}") from exc
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INTERLOCK_", env_file=".env", extra="ignore", validate_default=True
    )

    data_dir: Path = Field(Path(".interlock"), description="Where the embedded database lives.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in data_dir.")
    secret_key: SecretStr | None = Field(
        None, description="Signs sessions and CSRF tokens; generated in embedded mode."
    )
    redis_url: str | None = Field(None, description="Shared store for rate limits (optional).")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.CONSOLE
    public_base_url: str = Field("", description="Public URL of the server, for links.")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Larger request bodies get 413.")
    shutdown_grace_seconds: float = Field(
        10.0, ge=0, description="SIGTERM waits this long for in-flight requests."
    )
    rate_limit_per_key: str | None = "1200/minute"
    rate_limit_per_ip: str | None = "600/minute"
    rate_limit_login: str | None = "10/minute"
    login_lockout: str | None = Field(
        "5/15 minutes", description="Failed logins allowed per account before it is locked."
    )
    rate_limit_evaluation: str | None = Field(None, description="Off unless set.")
    session_hours: int = Field(12, ge=1, le=24 * 30)
    password_hash_cost: str = Field(
        "default", pattern="^(default|minimum)$", description="'minimum' only for tests."
    )
    load_demo_data: bool = True
    jobs_runner: bool | None = Field(
        None,
        description="Run jobs inside `serve`; default: on with SQLite, off with PostgreSQL.",
    )
    jobs_concurrency: int = Field(
        2, ge=1, le=64, description="Job threads of the in-server runner."
    )
    jobs_periodic: bool = Field(
        True, description="Start periodic (cron) jobs from this process's runner."
    )
    jobs_namespace: str = Field(
        "interlock",
        pattern=r"^[A-Za-z0-9_]{1,40}$",
        description="Prefix of the queue names, to share a Redis or database between instances.",
    )
    jobs_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="Longest wait between two looks at an idle queue."
    )
    jobs_heartbeat_seconds: float = Field(
        10.0, gt=0, le=3600, description="How often a job worker says it is alive."
    )
    jobs_worker_timeout_seconds: float = Field(
        60.0, gt=0, le=86400, description="A worker silent this long is dead; its jobs are retried."
    )
    jobs_imports: str = Field(
        "", description="Comma-separated modules that register more job types (plugins, tests)."
    )

    @field_validator(
        "rate_limit_per_key",
        "rate_limit_per_ip",
        "rate_limit_login",
        "login_lockout",
        "rate_limit_evaluation",
    )
    @classmethod
    def _check_rate_limit(cls, value: str | None) -> str | None:
        return _rate_limit(value)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite:// or postgresql://")
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if self.database_url.startswith("postgresql://"):
            # psycopg 3 is the only PostgreSQL driver we ship.
            self.database_url = "postgresql+psycopg://" + self.database_url.split("://", 1)[1]
        return self

    @property
    def embedded(self) -> bool:
        """SQLite in the data directory: the one-machine mode that sets itself up."""
        return not self.database_url or self.database_url.startswith("sqlite")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / DATABASE_FILE}"

    def resolved_secret_key(self) -> str:
        """The secret key; in embedded mode generated once and kept in the data directory.

        Raises SettingsError when PostgreSQL is used without INTERLOCK_SECRET_KEY, since every
        replica must sign with the same key.
        """
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if not self.embedded:
            raise SettingsError(
                "INTERLOCK_SECRET_KEY must be set when INTERLOCK_DATABASE_URL is PostgreSQL: "
                "every replica must share it"
            )
        path = self.data_dir / SECRET_KEY_FILE
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip()

    def redacted(self) -> dict[str, Any]:
        """Effective configuration for the startup log, secrets hidden."""
        shown = self.model_dump(mode="json")
        shown["secret_key"] = "***" if self.secret_key else "(generated in data dir)"
        shown["database_url"] = _redact_url(self.effective_database_url)
        if self.redis_url:
            shown["redis_url"] = _redact_url(self.redis_url)
        return shown


class SettingsError(Exception):
    """A setting is missing or wrong; the message names it."""


def _redact_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "***"


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; raise SettingsError with one clear line if bad."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "INTERLOCK_" + "_".join(str(p) for p in first["loc"]).upper() if first["loc"] else ""
        raise SettingsError(f"invalid setting {name}: {first['msg']}".replace("  ", " ")) from None
