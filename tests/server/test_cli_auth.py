"""`interlock users create` and `interlock keys create | revoke | list`.

A few tests run the real `interlock` executable (each costs a process start); the table of
refusals runs the same commands in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from interlock import cli
from interlock.server.app import create_app
from interlock.server.auth.credentials import looks_like_api_key
from interlock.server.auth.roles import Role
from interlock.server.db.engine import Database
from tests.conftest import make_settings
from tests.server.auth.support import bearer, make_key

INTERLOCK = str(Path(sys.executable).parent / "interlock")
SECRET = "test-secret-key-not-for-production"
PASSWORD = "a long enough password"


def cli_env(data_dir: Path, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    env.update(
        INTERLOCK_DATA_DIR=str(data_dir),
        INTERLOCK_SECRET_KEY=SECRET,
        INTERLOCK_PASSWORD_HASH_COST="minimum",
        INTERLOCK_LOAD_DEMO_DATA="false",
    )
    if database_url:
        env["INTERLOCK_DATABASE_URL"] = database_url
    return env


def run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [INTERLOCK, *args],
        env=env,
        cwd=env["INTERLOCK_DATA_DIR"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def printed_key(result: subprocess.CompletedProcess[str], kind: str) -> str:
    """The key, checked to be the only thing on standard output."""
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    value = lines[0]
    assert looks_like_api_key(value) and value.startswith(f"ilk_{kind}_"), value
    assert value not in result.stderr
    return value


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh embedded data directory: the first command prepares it."""
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def embedded_client(data_dir: Path) -> Iterator[Any]:
    """A server on the data directory, built once the CLI has prepared it."""
    opened: list[TestClient] = []

    def build() -> TestClient:
        settings = make_settings(f"sqlite:///{data_dir / 'interlock.db'}", data_dir)
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        opened.append(client.__enter__())
        return client

    yield build
    for client in opened:
        client.__exit__(None, None, None)


def test_a_cli_key_is_printed_alone_and_served_until_revoked(
    client: TestClient, database_url: str, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, database_url)
    value = printed_key(run(["keys", "create", "--role", "admin", "--name", "deploy"], env), "adm")

    # The server, already running on this database, serves the new key from its next request.
    headers = bearer(value)
    me = client.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200, me.text
    assert me.json()["roles"] == [{"role": "admin", "project": None, "environment": None}]
    assert client.get("/api/v1/users", headers=headers).status_code == 200  # instance-wide

    listed = CliRunner().invoke(cli.app, ["keys", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    [row] = [r for r in rows if r[3] == "deploy"]
    key_id, role, scope, _, hint = row
    assert (role, scope) == ("admin", "*")
    assert value.startswith(hint.rstrip("…")) and value not in listed.stdout

    revoked = run(["keys", "revoke", key_id], env)
    assert revoked.returncode == 0, revoked.stderr
    response = client.get("/api/v1/auth/me", headers=headers)
    assert response.status_code == 401, response.text

    listed = CliRunner().invoke(cli.app, ["keys", "list"], env=env)
    assert key_id not in [line.split("\t")[0] for line in listed.stdout.splitlines()]
    listed = CliRunner().invoke(cli.app, ["keys", "list", "--include-revoked"], env=env)
    assert key_id in [line.split("\t")[0] for line in listed.stdout.splitlines()]


def test_an_sdk_server_key_belongs_to_one_environment(data_dir: Path, embedded_client: Any) -> None:
    result = run(
        [
            "keys",
            "create",
            "--role",
            "sdk-server",
            "--project",
            "default",
            "--environment",
            "production",
        ],
        cli_env(data_dir),
    )
    value = printed_key(result, "srv")
    # A fresh data directory was prepared on the way; that news went to stderr.
    assert "created the first admin" in result.stderr

    client = embedded_client()
    me = client.get("/api/v1/auth/me", headers=bearer(value))
    assert me.status_code == 200, me.text
    scope = {"role": "sdk-server", "project": "default", "environment": "production"}
    assert me.json()["roles"] == [scope]
    # An SDK key reads no management data.
    response = client.get("/api/v1/projects/default", headers=bearer(value))
    assert response.status_code == 403, response.text


def test_users_create_reads_the_password_from_standard_input(
    data_dir: Path, embedded_client: Any
) -> None:
    result = run(
        [
            "users",
            "create",
            "--email",
            "Grace@Example.com",
            "--role",
            "editor",
            "--project",
            "default",
            "--environment",
            "staging",
        ],
        cli_env(data_dir),
        stdin=PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr

    client = embedded_client()
    login = {"email": "grace@example.com", "password": PASSWORD}
    response = client.post("/api/v1/auth/login", json=login)
    assert response.status_code == 200, response.text
    assert response.json()["user"]["roles"] == [
        {"role": "editor", "project": "default", "environment": "staging"}
    ]


def test_a_refused_command_says_why_in_one_line_without_a_traceback(data_dir: Path) -> None:
    result = run(["keys", "create", "--role", "admin", "--project", "nowhere"], cli_env(data_dir))
    assert result.returncode != 0
    assert result.stdout == ""
    assert "no project 'nowhere'" in result.stderr
    assert "Traceback" not in result.stderr


REFUSALS: list[tuple[list[str], str, str]] = [
    (["keys", "create", "--role", "owner"], "", "unknown role 'owner'"),
    (["keys", "create", "--role", "editor"], "", "give a project"),
    (["keys", "create", "--role", "sdk-client", "--project", "default"], "", "environment"),
    (["keys", "create", "--role", "viewer", "--project", "nowhere"], "", "no project 'nowhere'"),
    (
        ["keys", "create", "--role", "viewer", "--project", "default", "--environment", "qa"],
        "",
        "has no environment 'qa'",
    ),
    (["keys", "create", "--role", "admin", "--environment", "staging"], "", "needs --project"),
    (["keys", "create", "--role", "admin", "--expires-at", "2000-01-01"], "", "in the past"),
    (["keys", "revoke", "999999"], "", "not found"),
    (["users", "create", "--email", "a@example.com", "--role", "viewer"], "short\n", "password"),
    (["users", "create", "--email", "nope", "--role", "viewer"], PASSWORD + "\n", "email"),
    (["users", "create", "--email", "a@example.com", "--role", "owner"], PASSWORD, "owner"),
    (
        ["users", "create", "--email", "a@example.com", "--role", "sdk-server"],
        PASSWORD,
        "for API keys only",
    ),
    (
        ["users", "create", "--email", "admin@localhost", "--role", "viewer"],
        PASSWORD,
        "already exists",
    ),
]


def test_refused_commands_fail_with_a_message_and_change_nothing(
    data_dir: Path, embedded_client: Any
) -> None:
    runner = CliRunner()
    env = cli_env(data_dir)
    assert runner.invoke(cli.app, ["keys", "list"], env=env).exit_code == 0
    client = embedded_client()
    db = Database(f"sqlite:///{data_dir / 'interlock.db'}")
    _, admin = make_key(db, Role.ADMIN)
    db.dispose()

    def state() -> tuple[Any, Any]:
        keys = client.get("/api/v1/keys", params={"include_revoked": True}, headers=bearer(admin))
        users = client.get("/api/v1/users", headers=bearer(admin))
        return keys.json(), users.json()

    before = state()
    for args, stdin, message in REFUSALS:
        result = runner.invoke(cli.app, args, env=env, input=stdin)
        assert result.exit_code != 0, (args, result.output)
        assert isinstance(result.exception, SystemExit), (args, result.exception)
        assert message in result.stderr, (args, result.stderr)
        assert result.stdout == "", (args, result.stdout)
    assert state() == before


def test_a_revoke_at_a_later_time_keeps_the_key_working(
    data_dir: Path, embedded_client: Any
) -> None:
    runner = CliRunner()
    env = cli_env(data_dir)
    created = runner.invoke(cli.app, ["keys", "create", "--role", "admin"], env=env)
    assert created.exit_code == 0, created.output
    value = created.stdout.strip()
    client = embedded_client()
    key_id = client.get("/api/v1/keys", headers=bearer(value)).json()["items"][-1]["id"]

    result = runner.invoke(
        cli.app, ["keys", "revoke", str(key_id), "--at", "2999-01-01T00:00:00"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "2999-01-01T00:00:00+00:00" in result.stderr
    assert client.get("/api/v1/auth/me", headers=bearer(value)).status_code == 200
