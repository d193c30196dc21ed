"""Settings: read from INTERLOCK_* (and .env), checked at startup, secrets kept secret."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from interlock.server.settings import (
    SECRET_KEY_FILE,
    LogFormat,
    LogLevel,
    Settings,
    SettingsError,
    load_settings,
    redact_url,
)
from tests.server.processes import clean_env, run_cli

# One valid, non-default value per setting, and what the setting then holds. Every field of
# Settings must be here: a new setting is read from the environment like all the others.
FROM_ENVIRONMENT: dict[str, tuple[str, Any]] = {
    "data_dir": ("/srv/interlock", Path("/srv/interlock")),
    "database_url": (
        "postgresql://app@db.internal/flags",
        "postgresql+psycopg://app@db.internal/flags",
    ),
    "secret_key": ("a-long-enough-secret-key", "a-long-enough-secret-key"),
    "redis_url": ("redis://cache.internal:6379/2", "redis://cache.internal:6379/2"),
    "host": ("0.0.0.0", "0.0.0.0"),  # noqa: S104 - a value under test, not a bind
    "port": ("9090", 9090),
    "workers": ("4", 4),
    "log_level": ("WARNING", LogLevel.WARNING),
    "log_format": ("json", LogFormat.JSON),
    "public_base_url": ("https://flags.example.com/", "https://flags.example.com"),
    "max_body_bytes": ("65536", 65536),
    "shutdown_grace_seconds": ("2.5", 2.5),
    "rate_limit_per_key": ("100/second", "100/second"),
    "rate_limit_per_ip": ("", None),
    "rate_limit_login": ("3 per minute", "3 per minute"),
    "login_lockout": ("10/hour", "10/hour"),
    "rate_limit_evaluation": ("5000/second", "5000/second"),
    "session_hours": ("48", 48),
    "password_hash_cost": ("minimum", "minimum"),
    "load_demo_data": ("false", False),
    "jobs_runner": ("true", True),
    "jobs_concurrency": ("8", 8),
    "jobs_periodic": ("false", False),
    "jobs_namespace": ("staging_1", "staging_1"),
    "jobs_poll_seconds": ("0.25", 0.25),
    "jobs_heartbeat_seconds": ("5", 5.0),
    "jobs_worker_timeout_seconds": ("30", 30.0),
    "jobs_imports": ("myplugin.jobs", "myplugin.jobs"),
}


@pytest.fixture(autouse=True)
def no_ambient_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what a test sets: no INTERLOCK_* of the caller, no .env of the repository."""
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"INTERLOCK_{name.upper()}", raising=False)
    monkeypatch.chdir(tmp_path)


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_every_setting_is_in_the_environment_table() -> None:
    assert set(Settings.model_fields) <= set(FROM_ENVIRONMENT)


@pytest.mark.parametrize("name", sorted(set(FROM_ENVIRONMENT) & set(Settings.model_fields)))
def test_each_setting_is_read_from_its_interlock_variable(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    given, expected = FROM_ENVIRONMENT[name]
    assert _plain(getattr(Settings(), name)) != expected, "pick a value that is not the default"
    monkeypatch.setenv(f"INTERLOCK_{name.upper()}", given)
    assert _plain(getattr(load_settings(), name)) == expected


def test_a_dotenv_file_is_read_and_the_environment_wins_over_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("INTERLOCK_PORT=9001\nINTERLOCK_HOST=10.0.0.5\n")
    monkeypatch.setenv("INTERLOCK_PORT", "9002")
    settings = load_settings()
    assert settings.host == "10.0.0.5"
    assert settings.port == 9002


BAD_VALUES = [
    ("INTERLOCK_PORT", "abc"),
    ("INTERLOCK_PORT", "70000"),
    ("INTERLOCK_WORKERS", "0"),
    ("INTERLOCK_LOG_FORMAT", "xml"),
    ("INTERLOCK_LOG_LEVEL", "loud"),
    ("INTERLOCK_RATE_LIMIT_PER_KEY", "lots"),
    ("INTERLOCK_RATE_LIMIT_PER_IP", "10/minute;100/hour"),
    ("INTERLOCK_LOGIN_LOCKOUT", "5 per fortnight"),
    ("INTERLOCK_RATE_LIMIT_EVALUATION", "-1/second"),
    ("INTERLOCK_DATABASE_URL", "mysql://app@db/flags"),
    ("INTERLOCK_DATABASE_URL", "flags.db"),
    ("INTERLOCK_DATABASE_URL", "postgresql://app@db:port/flags"),
    ("INTERLOCK_REDIS_URL", "cache.internal:6379"),
    ("INTERLOCK_REDIS_URL", "memcached://cache.internal"),
    ("INTERLOCK_PUBLIC_BASE_URL", "flags.example.com"),
    ("INTERLOCK_SECRET_KEY", "short"),
    ("INTERLOCK_MAX_BODY_BYTES", "big"),
    ("INTERLOCK_SHUTDOWN_GRACE_SECONDS", "-1"),
    ("INTERLOCK_LOAD_DEMO_DATA", "maybe"),
    ("INTERLOCK_PASSWORD_HASH_COST", "cheap"),
    ("INTERLOCK_SESSION_HOURS", "0"),
]


@pytest.mark.parametrize(("variable", "value"), BAD_VALUES)
def test_a_bad_value_is_refused_with_one_line_naming_the_variable(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    message = str(refused.value)
    assert message.startswith(f"invalid setting {variable}:")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("INTERLOCK_DATABASE_URL", "mysql://app:hunter2-db@db/flags"),
        ("INTERLOCK_REDIS_URL", "memcached://:hunter2-redis@cache"),
        ("INTERLOCK_SECRET_KEY", "hunter2"),
    ],
)
def test_a_refused_secret_is_not_repeated_in_the_message(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert variable in str(refused.value)
    assert "hunter2" not in str(refused.value)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("INTERLOCK_PORT", "abc"),
        ("INTERLOCK_LOG_FORMAT", "xml"),
        ("INTERLOCK_RATE_LIMIT_PER_KEY", "lots"),
        ("INTERLOCK_DATABASE_URL", "mysql://app@db/flags"),
        ("INTERLOCK_REDIS_URL", "foo"),
    ],
)
def test_serve_stops_at_startup_on_a_bad_setting(variable: str, value: str, tmp_path: Path) -> None:
    env = clean_env(INTERLOCK_DATA_DIR=str(tmp_path / "data"), **{variable: value})
    result = run_cli("serve", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert not (tmp_path / "data").exists(), "nothing is created before the settings are good"


@pytest.mark.slow
def test_serve_on_postgresql_without_a_secret_key_says_it_must_be_set(tmp_path: Path) -> None:
    env = clean_env(
        INTERLOCK_DATA_DIR=str(tmp_path / "data"),
        INTERLOCK_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/test",
    )
    result = run_cli("serve", env=env, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "INTERLOCK_SECRET_KEY must be set" in lines[0]


def test_postgresql_without_a_secret_key_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql://postgres@db/flags")
    with pytest.raises(SettingsError, match="INTERLOCK_SECRET_KEY must be set"):
        settings.resolved_secret_key()
    assert not (tmp_path / SECRET_KEY_FILE).exists()


def test_embedded_mode_generates_the_secret_key_once_readable_by_the_owner_only(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    first = Settings(data_dir=data_dir).resolved_secret_key()
    again = Settings(data_dir=data_dir).resolved_secret_key()
    path = data_dir / SECRET_KEY_FILE
    assert first == again == path.read_text()
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in data_dir.iterdir()] == [SECRET_KEY_FILE], "no temporary file left"


def test_a_set_secret_key_wins_over_the_generated_one(tmp_path: Path) -> None:
    Settings(data_dir=tmp_path).resolved_secret_key()
    chosen = Settings(data_dir=tmp_path, secret_key="chosen-by-the-operator")
    assert chosen.resolved_secret_key() == "chosen-by-the-operator"


def test_an_unusable_data_dir_is_a_settings_error_naming_it(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    with pytest.raises(SettingsError, match="INTERLOCK_DATA_DIR"):
        Settings(data_dir=not_a_directory).resolved_secret_key()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:////var/lib/interlock/interlock.db", "sqlite:////var/lib/interlock/interlock.db"),
        (
            "postgresql+psycopg://app:s3cret@db:5432/flags?options=-csearch_path%3Dx",
            "postgresql+psycopg://app:***@db:5432/flags?options=-csearch_path%3Dx",
        ),
        (
            "postgresql+psycopg://app@db/flags?password=s3cret",
            "postgresql+psycopg://app@db/flags?password=***",
        ),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        (
            "redis+unix:///run/redis.sock?password=s3cret&db=1",
            "redis+unix:///run/redis.sock?password=***&db=1",
        ),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
    ],
)
def test_urls_are_shown_without_their_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_effective_configuration_never_shows_a_secret(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql://app:db-password-1@db/flags",
        secret_key="the-secret-key-value",
        redis_url="redis://:redis-password-2@cache:6379/0",
    )
    shown = json.dumps(settings.redacted())
    for secret in ("db-password-1", "the-secret-key-value", "redis-password-2"):
        assert secret not in shown
    assert settings.redacted()["database_url"] == "postgresql+psycopg://app:***@db/flags"
    assert settings.redacted()["port"] == 8000


def test_the_evaluation_rate_limit_is_off_by_default() -> None:
    settings = Settings()
    assert settings.rate_limit_evaluation is None
    assert settings.rate_limit_per_key is not None
