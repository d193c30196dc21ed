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
