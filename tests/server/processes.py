"""Real `interlock` processes for the few tests that need one: startup, shutdown, workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

INTERLOCK = str(Path(sys.executable).with_name("interlock"))
REPO = Path(__file__).resolve().parents[2]
# Generous: a loaded CI machine may take many seconds to import and migrate.
STARTUP_SECONDS = 90.0


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any INTERLOCK_* or Prometheus setting, plus these."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("INTERLOCK_") and name != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(settings)
    return env


def embedded_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """Settings for a quick embedded server: cheap password hashing, no demo data."""
    return clean_env(
        INTERLOCK_DATA_DIR=str(data_dir),
        INTERLOCK_PASSWORD_HASH_COST="minimum",
        INTERLOCK_LOAD_DEMO_DATA="false",
        **settings,
    )


def run_cli(*args: str, env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`interlock ARGS`, to completion."""
    return subprocess.run(
        [INTERLOCK, *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 60.0) -> int:
        return self.process.wait(timeout=timeout)


@contextmanager
def running(
    command: list[str],
    env: Mapping[str, str],
    cwd: Path,
    port: int,
    stdout_path: Path | None = None,
) -> Iterator[Server]:
    """Start a server process, wait until /healthz answers, and make sure it ends."""
    stderr_path = cwd / f"server-{port}.stderr"
    with stderr_path.open("wb") as stderr, ExitStack() as stack:
        stdout = stack.enter_context(stdout_path.open("wb")) if stdout_path else subprocess.DEVNULL
        process = subprocess.Popen(command, env=dict(env), cwd=cwd, stdout=stdout, stderr=stderr)
    server = Server(process, f"http://127.0.0.1:{port}", stderr_path)
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_healthy(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            code = server.process.returncode
            raise AssertionError(f"server exited with {code}:\n{server.stderr()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"server did not answer within {STARTUP_SECONDS} s:\n{server.stderr()}")


def serve_command(*args: str) -> list[str]:
    return [INTERLOCK, "serve", *args]


def slow_server_command() -> list[str]:
    return [sys.executable, "-m", "tests.server.slow_server"]
