"""The service's real logging configuration, writing into a buffer for one test."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import structlog

from interlock.server.logs import configure_logging
from interlock.server.settings import LogFormat, LogLevel


class CapturedLogs:
    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    def text(self) -> str:
        return self._stream.getvalue()

    def events(self) -> list[dict[str, Any]]:
        """Every line as a JSON object (the JSON format writes one per line)."""
        return [json.loads(line) for line in self.text().splitlines() if line.strip()]


@contextlib.contextmanager
def captured_logs(fmt: LogFormat = LogFormat.JSON) -> Iterator[CapturedLogs]:
    """configure_logging as `serve` calls it, with stderr redirected; restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_structlog = structlog.get_config()
    stream = io.StringIO()
    with contextlib.redirect_stderr(stream):
        configure_logging(LogLevel.INFO, fmt)
    try:
        yield CapturedLogs(stream)
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.configure(**saved_structlog)
