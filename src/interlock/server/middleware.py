"""Pure ASGI middleware (no BaseHTTPMiddleware, so streamed responses are never buffered)."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interlock.server.problems import ProblemType, problem_response

log = structlog.get_logger("interlock.http")

REQUEST_ID_HEADER = "x-request-id"
# A client-sent id is echoed only if it is short and plain, so it cannot inject into logs.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# API answers are data, never documents: nothing may load or frame them.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# Pages (the docs UI today, the admin UI later) load their own scripts and styles only,
# plus the Swagger UI assets FastAPI's /docs pulls from a CDN.
PAGE_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: "
    "https://fastapi.tiangolo.com; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
JSON_TYPES = re.compile(r"^application/([a-z0-9.\-]+\+)?json$")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class EdgeMiddleware:
    """Request id in and out, security headers, one log line per request; HEAD is answered
    as GET without the body (FastAPI routes declare GET only, and monitors probe with HEAD)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = sent if _VALID_REQUEST_ID.match(sent) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        started_response = False
        head = scope["method"] == "HEAD"
        inner_scope = {**scope, "method": "GET"} if head else scope

        async def send_with_headers(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                content_type = headers.get("content-type", "")
                headers.setdefault(
                    "Content-Security-Policy",
                    PAGE_CSP if content_type.startswith("text/html") else API_CSP,
                )
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
                # No key, slug or filter of ours holds a NUL, and PostgreSQL text cannot: refused
                # here, for every route, before anything reads the URL.
                detail = "the URL contains a NUL character (%00)"
                await problem_response(ProblemType.BAD_REQUEST, detail)(
                    scope, receive, send_with_headers
                )
                return
            await self.app(inner_scope, receive, send_with_headers)
        except Exception:
            # The one place an unexpected error is caught: logged whole with the request id,
            # answered with a problem that shows nothing of our internals.
            log.exception("unhandled error", method=scope["method"], path=scope["path"])
            if started_response:
                raise
            detail = (
                f"something went wrong on our side; quote request id {request_id} when reporting it"
            )
            response = problem_response(
                ProblemType.INTERNAL, detail, instance=scope["path"], request_id=request_id
            )
            await response(scope, receive, send_with_headers)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")


class BodyGuardMiddleware:
    """413 for bodies over the limit (declared or streamed), 415 for non-JSON API bodies.

    Both are raised when the route reads the body, not here: the route is known by then, so
    the problem is answered by the problem handlers and counted under the route's template,
    and a route that takes no body is not refused for one it would ignore. Routes read the
    body before authenticating or touching the database, so nothing is done for a body that
    is refused.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, json_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.json_prefixes = json_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and not declared.isdigit():
            detail = "Content-Length is not a number"
            response = problem_response(ProblemType.BAD_REQUEST, detail, instance=scope["path"])
            await response(scope, receive, send)
            return
        limit = self.max_body_bytes
        refusal: HTTPException | None = None
        if declared is not None and int(declared) > limit:
            refusal = HTTPException(413, f"request body is over the limit of {limit} bytes")
        elif scope["path"].startswith(self.json_prefixes):
            has_body = (declared is not None and declared != "0") or "transfer-encoding" in headers
            media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if has_body and not JSON_TYPES.match(media_type):
                refusal = HTTPException(
                    415, f"send JSON (Content-Type: application/json), not {media_type or 'none'}"
                )
        received = 0

        async def guarded_receive() -> Message:
            nonlocal received
            if refusal is not None:
                raise refusal
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"request body is over the limit of {limit} bytes")
            return message

        await self.app(scope, guarded_receive, send)


def request_id_of(scope_or_state: Any) -> str | None:
    state = scope_or_state.get("state", {}) if isinstance(scope_or_state, dict) else {}
    return state.get("request_id")
