"""`interlock serve` as a real process: graceful SIGTERM, workers, an outdated PostgreSQL schema."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from interlock.server.app import create_app
from interlock.server.bootstrap import DEMO_PROJECTS
from interlock.server.settings import Settings
from tests.conftest import PG_ADMIN_URL
from tests.server.processes import (
    REPO,
    clean_env,
    embedded_env,
    free_port,
    run_cli,
    running,
    serve_command,
    slow_server_command,
)
from tests.server.slow_server import SLOW_PATH

pytestmark = pytest.mark.slow


class SlowRequest(threading.Thread):
    """GET the slow route in the background; `response` or `error` says how it ended."""

    def __init__(self, url: str, seconds: float, started: Path) -> None:
        super().__init__(daemon=True)
        self.url = f"{url}{SLOW_PATH}"
        self.params = {"seconds": str(seconds), "started": str(started)}
        self.response: httpx.Response | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            timeout = float(self.params["seconds"]) + 60
            self.response = httpx.get(self.url, params=self.params, timeout=timeout)
        except httpx.HTTPError as exc:
            self.error = exc


def _wait_for(path: Path, request: SlowRequest) -> None:
    """Until the slow route has begun (it touches `path`), or the request has failed."""
    while not path.exists():
        assert request.is_alive(), f"the slow request ended early: {request.error}"
        request.join(timeout=0.02)


def _start_slow_server(tmp_path: Path, grace_seconds: str) -> tuple[list[str], dict[str, str], int]:
    port = free_port()
    env = embedded_env(
        tmp_path / "data",
        INTERLOCK_PORT=str(port),
        INTERLOCK_SHUTDOWN_GRACE_SECONDS=grace_seconds,
        INTERLOCK_LOG_FORMAT="json",
        PYTHONPATH=str(REPO),
    )
    return slow_server_command(), env, port


def test_sigterm_lets_an_in_flight_request_finish_then_exits_cleanly(tmp_path: Path) -> None:
    command, env, port = _start_slow_server(tmp_path, grace_seconds="10")
    started = tmp_path / "started"
    with running(command, env, tmp_path, port) as server:
        request = SlowRequest(server.url, 1.5, started)
        request.start()
        _wait_for(started, request)
        server.terminate()
        request.join(timeout=60)
        exit_code = server.wait()
        log = server.stderr()
    assert request.response is not None, request.error
    assert request.response.status_code == 200
    assert request.response.json() == {"slept": 1.5}
    assert exit_code == 0, log
    # INTERLOCK_LOG_FORMAT=json: every line on stderr is one JSON object.
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines
    assert all(isinstance(json.loads(line), dict) for line in lines), log


def test_a_request_slower_than_the_grace_deadline_does_not_keep_the_process_alive(
    tmp_path: Path,
) -> None:
    command, env, port = _start_slow_server(tmp_path, grace_seconds="0.5")
    started = tmp_path / "started"
    with running(command, env, tmp_path, port) as server:
        request = SlowRequest(server.url, 600, started)
        request.start()
        _wait_for(started, request)
        server.terminate()
        # A deadline for the test, far above the grace period, far below the request.
        exit_code = server.wait(timeout=60)
        log = server.stderr()
    request.join(timeout=60)
    assert exit_code == 0, log
    assert request.response is None or request.response.status_code != 200
    assert "requests still running after the shutdown deadline" in log


def test_serve_with_two_workers_serves_and_sums_metrics_across_them(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    env = embedded_env(data_dir)
    command = serve_command("--port", str(port), "--workers", "2")
    with running(command, env, tmp_path, port) as server:

        def healthz_count() -> float:
            response = httpx.get(f"{server.url}/metrics", timeout=5)
            assert response.status_code == 200
            families = {f.name: f for f in text_string_to_metric_families(response.text)}
            assert "interlock_build_info" in families
            return sum(
                sample.value
                for sample in families["interlock_http_requests"].samples
                if sample.name == "interlock_http_requests_total"
                and sample.labels["route"] == "/healthz"
                and sample.labels["status"] == "200"
            )

        before = healthz_count()
        for _ in range(6):
            assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        after = healthz_count()
        server.terminate()
        exit_code = server.wait()
    # Whichever worker answers the scrape, it reports every worker's requests.
    assert after - before == 6
    assert list((data_dir / "prometheus").glob("*.db"))
    assert exit_code == 0, server.stderr()


@pytest.fixture
def empty_postgres_schema() -> Iterator[str]:
    """A new, empty schema in database `test`; the URL selects it. Dropped afterwards."""
    schema = f"interlock_serve_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc})")
    try:
        yield schema
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def test_serve_refuses_an_unmigrated_postgres_schema_until_db_upgrade(
    tmp_path: Path, empty_postgres_schema: str
) -> None:
    database_password = "pg-password-" + uuid.uuid4().hex[:8]
    secret_key = "secret-key-" + uuid.uuid4().hex
    redis_password = "redis-password-" + uuid.uuid4().hex[:8]
    # Trust authentication ignores the password; it is here to be kept out of the output.
    database_url = (
        f"postgresql://postgres:{database_password}@127.0.0.1:5432/test"
        f"?options=-csearch_path%3D{empty_postgres_schema}"
    )
    env = embedded_env(
        tmp_path / "data",
        INTERLOCK_DATABASE_URL=database_url,
        INTERLOCK_SECRET_KEY=secret_key,
        INTERLOCK_REDIS_URL=f"redis://:{redis_password}@127.0.0.1:6379/0",
        INTERLOCK_PORT=str(free_port()),
    )

    refused = run_cli("serve", env=env, cwd=tmp_path)

    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "Traceback" not in output
    last_line = refused.stderr.strip().splitlines()[-1]
    assert "interlock db upgrade" in last_line
    # The effective configuration was printed first, secrets redacted.
    assert "configuration" in refused.stderr
    assert "127.0.0.1:5432/test" in refused.stderr
    for secret in (database_password, secret_key, redis_password):
        assert secret not in output

    upgraded = run_cli("db", "upgrade", env=env, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr

    # What serve does next, in this process: build the app (it would refuse an outdated
    # schema) and answer /readyz.
    settings = Settings(database_url=database_url, secret_key=secret_key, data_dir=tmp_path)
    app = create_app(settings)
    with TestClient(app) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ok"


def test_serve_with_an_unreachable_database_stops_with_one_line(tmp_path: Path) -> None:
    password = "pg-password-" + uuid.uuid4().hex[:8]
    env = embedded_env(
        tmp_path / "data",
        # Nothing listens on port 1: the connection is refused at once.
        INTERLOCK_DATABASE_URL=f"postgresql://postgres:{password}@127.0.0.1:1/test",
        INTERLOCK_SECRET_KEY="secret-key-" + uuid.uuid4().hex,
    )
    result = run_cli("serve", env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("interlock: cannot use the database")
    assert "127.0.0.1:1" in last_line
    assert password not in result.stderr


def test_the_first_serve_prints_the_admin_login_once_and_loads_the_demo_projects(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    env = clean_env(INTERLOCK_DATA_DIR=str(data_dir), INTERLOCK_PASSWORD_HASH_COST="minimum")
    first_stdout, second_stdout = tmp_path / "first.out", tmp_path / "second.out"

    port = free_port()
    with running(serve_command("--port", str(port)), env, tmp_path, port, first_stdout) as server:
        printed = first_stdout.read_text()
        email = re.search(r"email:\s+(\S+)", printed)
        password = re.search(r"password:\s+(\S+)", printed)
        assert email and password, printed
        with httpx.Client(base_url=server.url, timeout=10) as client:
            login = client.post(
                "/api/v1/auth/login",
                json={"email": email.group(1), "password": password.group(1)},
            )
            assert login.status_code == 200, login.text
            projects = client.get("/api/v1/projects").json()["items"]
        server.terminate()
        assert server.wait() == 0, server.stderr()
    assert [p["key"] for p in projects] == ["default", *(key for key, _, _ in DEMO_PROJECTS)]
    assert password.group(1) not in server.stderr()  # the login goes to stdout only

    port = free_port()
    with running(serve_command("--port", str(port)), env, tmp_path, port, second_stdout) as again:
        again.terminate()
        assert again.wait() == 0, again.stderr()
    assert "password" not in second_stdout.read_text()
