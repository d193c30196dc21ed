"""All configuration of the service, read from INTERLOCK_* environment variables and .env."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from limits import parse_many
from pydantic import Field, SecretStr, field_validator
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


# Fields whose values never appear in messages or logs.
SECRET_SETTINGS = frozenset({"secret_key", "database_url", "redis_url"})
REDIS_SCHEMES = ("redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster")
# Query parameters of a URL that carry credentials (psycopg and redis-py accept both).
_SECRET_QUERY_PARAMS = frozenset({"password", "passwd", "pass", "sslpassword", "token"})


def _rate_limit(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        parsed = parse_many(value)
    except ValueError:
        parsed = []
    # One rule per setting: a second one would be silently ignored by the limiter.
    if len(parsed) != 1:
        raise ValueError("not a rate limit like '600/minute' or '10 per 15 minutes'")
    return value.strip()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INTERLOCK_", env_file=".env", extra="ignore", validate_default=True
    )

    data_dir: Path = Field(Path(".interlock"), description="Where the embedded database lives.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in data_dir.")
    secret_key: SecretStr | None = Field(
        None,
        min_length=16,
        description="Signs sessions and CSRF tokens; generated in embedded mode.",
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

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        scheme, sep, rest = value.partition("://")
        if not sep:
            raise ValueError("must look like sqlite:///path or postgresql://user@host/db")
        if scheme in ("postgres", "postgresql", "postgresql+psycopg"):
            # psycopg 3 is the only PostgreSQL driver we ship.
            value = "postgresql+psycopg://" + rest
        elif scheme != "sqlite":
            raise ValueError("must start with sqlite:// or postgresql:// (psycopg 3 is the driver)")
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError("is not a valid database URL") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        scheme, sep, _ = value.partition("://")
        if not sep or scheme not in REDIS_SCHEMES:
            raise ValueError("must start with redis://, rediss:// or redis+unix://")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _check_public_base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(
                    "must be an http:// or https:// URL, like https://flags.example.com"
                )
        return value

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
        try:
            if not path.exists():
                _create_secret_file(path, secrets.token_urlsafe(48))
            key = path.read_text().strip()
        except OSError as exc:
            raise SettingsError(
                f"INTERLOCK_DATA_DIR: cannot keep the secret key in {path}: {exc.strerror}"
            ) from None
        if len(key) < 16:
            raise SettingsError(f"INTERLOCK_SECRET_KEY: the key in {path} is too short; delete it")
        return key

    def redacted(self) -> dict[str, Any]:
        """Effective configuration for the startup log, secrets hidden."""
        shown = self.model_dump(mode="json")
        del shown["secret_key"]
        shown["secret_key_from"] = (
            "INTERLOCK_SECRET_KEY" if self.secret_key else f"{self.data_dir / SECRET_KEY_FILE}"
        )
        shown["database_url"] = redact_url(self.effective_database_url)
        if self.redis_url:
            shown["redis_url"] = redact_url(self.redis_url)
        return shown


class SettingsError(Exception):
    """A setting is missing or wrong; the message names it."""


def _create_secret_file(path: Path, key: str) -> None:
    """Write the key readable by the owner only, all at once: a concurrent starter (another
    worker, a CLI command) either finds no file or the whole key, never an empty one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(key)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp creates the file 0600; link() fails if another process created the key first,
        # and then that key is the one everybody uses.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def redact_url(url: str) -> str:
    """The URL with its password (in the authority or the query) replaced by ***."""
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "***"
    secret_query = any(name.lower() in _SECRET_QUERY_PARAMS for name, _ in pairs)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not (at and ":" in userinfo) and not secret_query:
        return url  # nothing to hide; untouched (sqlite:////abs/path must keep its slashes)
    netloc = f"{userinfo.split(':', 1)[0]}:***@{host}" if at and ":" in userinfo else parts.netloc
    query = parts.query
    if secret_query:
        query = urlencode(
            [(n, "***" if n.lower() in _SECRET_QUERY_PARAMS else v) for n, v in pairs], safe="*"
        )
    # Not urlunsplit: it drops the empty authority of redis+unix:///path.
    shown = f"{parts.scheme}://{netloc}{parts.path}"
    return shown + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; raise SettingsError with one clear line if bad."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "_".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if field and field not in SECRET_SETTINGS and isinstance(first.get("input"), str | int):
            message += f" (got {first['input']!r})"
        name = f"INTERLOCK_{field.upper()}" if field else "settings"
        line = f"invalid setting {name}: {message}"
        raise SettingsError(" ".join(line.split())) from None
