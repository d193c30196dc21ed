"""RFC 9457 problem details: one stable type per failure kind, defined here and only here."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fastapi.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"
# Relative URIs, resolved against the server; GET /problems/{slug} documents each type.
TYPE_BASE = "/problems/"


class ProblemType(StrEnum):
    """The stable identifiers clients may switch on. Never rename one."""

    MALFORMED_REQUEST = "malformed-request"  # 400: body is not parseable JSON
    BAD_REQUEST = "bad-request"  # 400: other malformed input (headers, cursors)
    VALIDATION = "validation-error"  # 422
    UNAUTHENTICATED = "unauthenticated"  # 401
    FORBIDDEN = "forbidden"  # 403
    CSRF = "csrf-failed"  # 403
    NOT_FOUND = "not-found"  # 404
    METHOD_NOT_ALLOWED = "method-not-allowed"  # 405
    NOT_ACCEPTABLE = "not-acceptable"  # 406
    CONFLICT = "conflict"  # 409
    PRECONDITION_FAILED = "precondition-failed"  # 412
    BODY_TOO_LARGE = "body-too-large"  # 413
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"  # 415
    PRECONDITION_REQUIRED = "precondition-required"  # 428
    RATE_LIMITED = "rate-limited"  # 429
    INTERNAL = "internal-error"  # 500
    UNAVAILABLE = "unavailable"  # 503

    @property
    def uri(self) -> str:
        return TYPE_BASE + self.value


STATUS_TITLES: dict[ProblemType, tuple[int, str]] = {
    ProblemType.MALFORMED_REQUEST: (400, "Malformed request body"),
    ProblemType.BAD_REQUEST: (400, "Bad request"),
    ProblemType.VALIDATION: (422, "Invalid input"),
    ProblemType.UNAUTHENTICATED: (401, "Authentication required"),
    ProblemType.FORBIDDEN: (403, "Not allowed"),
    ProblemType.CSRF: (403, "CSRF token missing or wrong"),
    ProblemType.NOT_FOUND: (404, "Not found"),
    ProblemType.METHOD_NOT_ALLOWED: (405, "Method not allowed"),
    ProblemType.NOT_ACCEPTABLE: (406, "Not acceptable"),
    ProblemType.CONFLICT: (409, "Conflict"),
    ProblemType.PRECONDITION_FAILED: (412, "Precondition failed"),
    ProblemType.BODY_TOO_LARGE: (413, "Request body too large"),
    ProblemType.UNSUPPORTED_MEDIA_TYPE: (415, "Unsupported media type"),
    ProblemType.PRECONDITION_REQUIRED: (428, "Precondition required"),
    ProblemType.RATE_LIMITED: (429, "Too many requests"),
    ProblemType.INTERNAL: (500, "Internal server error"),
    ProblemType.UNAVAILABLE: (503, "Service unavailable"),
}

# What each type means and what to do about it; served at GET /problems/{slug}.
DESCRIPTIONS: dict[ProblemType, str] = {
    ProblemType.MALFORMED_REQUEST: "The request body is not valid JSON, or not UTF-8. Fix the "
    "syntax and send it again.",
    ProblemType.BAD_REQUEST: "A part of the request other than the body is malformed: a header, "
    "a cursor, a character the URL may not hold.",
    ProblemType.VALIDATION: "The request is well-formed but some values are not acceptable. "
    "`errors` lists each one: `pointer` is a JSON pointer into the body (e.g. "
    "`/environments/0/key`), or `parameter` and `in` name a query, path or header parameter.",
    ProblemType.UNAUTHENTICATED: "No credentials, or an unknown, expired or revoked key or "
    "session. Send `Authorization: Bearer <API key>` or log in (see `WWW-Authenticate`).",
    ProblemType.FORBIDDEN: "The key or user is known, but its role does not allow this action "
    "on this project or environment.",
    ProblemType.CSRF: "An unsafe request made with a session cookie must send the value of the "
    "`interlock_csrf` cookie in the `X-CSRF-Token` header.",
    ProblemType.NOT_FOUND: "No such route, or no such resource that the caller may see.",
    ProblemType.METHOD_NOT_ALLOWED: "The path exists, but not with this method; `Allow` lists "
    "the methods it has.",
    ProblemType.NOT_ACCEPTABLE: "The server cannot answer in a media type the `Accept` header "
    "allows.",
    ProblemType.CONFLICT: "The request contradicts the current state, e.g. it creates a key "
    "that already exists. Nothing was changed.",
    ProblemType.PRECONDITION_FAILED: "`If-Match` names a version that is no longer current: "
    "someone changed the resource since you read it. Read it again (`current_etag`) and retry.",
    ProblemType.BODY_TOO_LARGE: "The request body is over the server's limit "
    "(INTERLOCK_MAX_BODY_BYTES).",
    ProblemType.UNSUPPORTED_MEDIA_TYPE: "The body is not JSON: send it with "
    "`Content-Type: application/json`.",
    ProblemType.PRECONDITION_REQUIRED: "This update needs `If-Match` with the ETag of the "
    "version you read, so that no one else's change is overwritten.",
    ProblemType.RATE_LIMITED: "Too many requests. Wait the seconds in `Retry-After`; "
    "`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` describe the window.",
    ProblemType.INTERNAL: "An unexpected error on the server; the request changed nothing. "
    "Quote `request_id` when reporting it: the server logged the details under it.",
    ProblemType.UNAVAILABLE: "The server cannot serve this now (its database or a queue does "
    "not answer). Retry later.",
}

STATUS_TO_TYPE = {status: kind for kind, (status, _) in STATUS_TITLES.items()}
STATUS_TO_TYPE[400] = ProblemType.BAD_REQUEST
STATUS_TO_TYPE[403] = ProblemType.FORBIDDEN


class Problem(Exception):
    """Raise anywhere below a route to answer with a problem response; nothing is committed."""

    def __init__(
        self,
        kind: ProblemType,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    @property
    def status(self) -> int:
        return STATUS_TITLES[self.kind][0]


def problem_body(
    kind: ProblemType, detail: str, instance: str | None = None, **extensions: Any
) -> dict[str, Any]:
    status, title = STATUS_TITLES[kind]
    body: dict[str, Any] = {"type": kind.uri, "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return body


def problem_response(
    kind: ProblemType,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = problem_body(kind, detail, instance, **extensions)
    return JSONResponse(body, status_code=body["status"], headers=headers, media_type=PROBLEM_JSON)


def not_found(what: str) -> Problem:
    return Problem(ProblemType.NOT_FOUND, f"{what} not found")


def conflict(detail: str, **extensions: Any) -> Problem:
    return Problem(ProblemType.CONFLICT, detail, **extensions)
