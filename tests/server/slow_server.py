"""`python -m tests.server.slow_server`: the real server with one test-only slow route.

It is configured by INTERLOCK_* like `interlock serve` and runs through the same
`serving.run`, so shutdown behaves exactly as in production. The route is a sync function
(like every route of ours, it runs in a thread) that touches the file named by `started` when
it begins, so a test knows the request is in flight without guessing with a sleep.
"""

from __future__ import annotations

import time
from pathlib import Path

from fastapi import FastAPI

from interlock.server import bootstrap, serving
from interlock.server.app import create_app
from interlock.server.db.engine import Database
from interlock.server.logs import configure_logging
from interlock.server.settings import Settings, load_settings

SLOW_PATH = "/test/slow"


def make_app(settings: Settings) -> FastAPI:
    app = create_app(settings)

    @app.get(SLOW_PATH)
    def slow(seconds: float, started: str) -> dict[str, float]:
        Path(started).touch()
        time.sleep(seconds)
        return {"slept": seconds}

    return app


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    db = Database(settings.effective_database_url)
    bootstrap.prepare(settings, db)
    db.dispose()
    serving.run(settings, make_app(settings))


if __name__ == "__main__":
    main()
