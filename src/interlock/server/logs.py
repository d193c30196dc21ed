"""structlog to standard error, as readable lines or JSON; stdlib loggers go the same way.

Secrets stay out: fields named like a secret are masked, anything shaped like an API key is
masked wherever it appears (an exception message, a URL), and tracebacks are plain text
without local variables (a rich traceback would print a password held in a local).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from interlock.server.settings import LogFormat, LogLevel

# Never log these, wherever they turn up in an event.
SECRET_FIELDS = frozenset(
    {"authorization", "password", "api_key", "token", "secret_key", "cookie", "session"}
)
# The shape of our API keys (see auth/credentials.py): `ilk_<kind>_<base62 body>`.
_API_KEY = re.compile(r"ilk_[a-z]{3}_[0-9A-Za-z]{6,}")
MASK = "***"


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _API_KEY.sub("ilk_" + MASK, value)
    if isinstance(value, dict):
        return {k: MASK if str(k).lower() in SECRET_FIELDS else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: masks secret fields and API-key-shaped strings."""
    for field, value in event.items():
        event[field] = MASK if field.lower() in SECRET_FIELDS else _scrub(value)
    return event


def configure_logging(level: LogLevel = LogLevel.INFO, fmt: LogFormat = LogFormat.CONSOLE) -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == LogFormat.JSON
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: loggers created at import time must follow a later reconfiguration.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks become text here, so the redaction below sees them too.
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.value.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our own middleware logs requests with their id; uvicorn's access log would repeat them.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # Alembic announces each of its plugins at every start: noise, not information.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
