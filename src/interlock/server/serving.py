"""Running the service under uvicorn: one process or N workers, and a graceful stop.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections, gives in-flight requests
`shutdown_grace_seconds` to finish, cancels what is left and shuts the app down. A sync route
runs in a thread, which cannot be cancelled, and Python waits for such threads before it
exits; so once the app has shut down, a watchdog ends the process if a request thread still
holds it. The deadline is a promise to the process supervisor, not a suggestion.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
from types import FrameType
from typing import Any

import structlog
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interlock.server.settings import Settings

log = structlog.get_logger("interlock")

# After the app has shut down, how long leftover request threads may delay the exit.
EXIT_LINGER_SECONDS = 1.0
# uvicorn kills a worker that does not answer its health check within this long. Its default
# (5 s) kills workers that are merely still starting on a busy machine, again and again.
WORKER_HEALTHCHECK_SECONDS = 30
WORKER_FACTORY = "interlock.server.serving:worker_app"


def run(settings: Settings, app: ASGIApp | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then drain and return (the process then exits 0).

    `app` is served as is in one process (tests add routes to it); with several workers each
    worker process builds its own app from the environment, so `app` must be None.
    """
    config: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
        "proxy_headers": False,
        "server_header": False,
    }
    if settings.workers == 1:
        if app is None:
            from interlock.server.app import create_app

            app = create_app(settings)
        _stop_quietly_on_signals()
        uvicorn.run(ExitWatchdog(app), **config)
        return
    if app is not None:
        raise ValueError("with several workers each worker builds its own app")
    # Each worker counts into its own files here; a scrape of any worker sums them all.
    metrics_dir = settings.data_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
    # Workers read their settings from the environment; command-line overrides must reach them.
    os.environ["INTERLOCK_HOST"] = settings.host
    os.environ["INTERLOCK_PORT"] = str(settings.port)
    os.environ["INTERLOCK_WORKERS"] = str(settings.workers)
    _stop_quietly_on_signals()
    uvicorn.run(
        WORKER_FACTORY,
        factory=True,
        workers=settings.workers,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        **config,
    )


def worker_app() -> ASGIApp:
    """Factory for each worker process of `run` (uvicorn imports it by name)."""
    from interlock.server.app import create_app_from_env

    return ExitWatchdog(create_app_from_env())


def _stop_quietly_on_signals() -> None:
    """Once uvicorn has drained, it re-raises the signal that stopped it under the handler that
    was there before; this one turns that into a clean exit 0 instead of death by signal. A
    signal that arrives before uvicorn installs its own handlers stops the process the same way.
    """

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


class ExitWatchdog:
    """Passes everything through; when the app has shut down, arms the exit watchdog."""

    def __init__(self, app: ASGIApp, linger_seconds: float = EXIT_LINGER_SECONDS) -> None:
        self.app = app
        self.linger_seconds = linger_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_watching(message: Message) -> None:
            await send(message)
            if message["type"] == "lifespan.shutdown.complete":
                timer = threading.Timer(self.linger_seconds, _exit_if_threads_hold_on)
                timer.daemon = True
                timer.start()

        await self.app(scope, receive, send_watching)


def _exit_if_threads_hold_on() -> None:
    others = [
        thread
        for thread in threading.enumerate()
        if thread is not threading.main_thread() and not thread.daemon
    ]
    # Short-lived helper threads (timers) end by themselves; request threads do not.
    for thread in others:
        thread.join(timeout=0.2)
    stuck = [thread.name for thread in others if thread.is_alive()]
    if not stuck:
        return
    log.warning(
        "requests still running after the shutdown deadline; exiting without them",
        threads=len(stuck),
    )
    logging.shutdown()
    os._exit(0)
