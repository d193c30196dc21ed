"""Every error the management API can give becomes an RFC 9457 problem response here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from interlock.server.problems import STATUS_TO_TYPE, Problem, ProblemType, problem_response

_LOCATION_NAMES = {"query": "query", "path": "path", "header": "header", "cookie": "cookie"}
# What FastAPI raises when a JSON body cannot even be decoded (e.g. it is not UTF-8).
_BODY_PARSE_FAILURE = "There was an error parsing the body"


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path: a path is often several routes (GET and
    POST on a collection), and the router's own 405 names only the first one it tried."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]
    # The edge answers HEAD wherever GET is served.
    return [*allowed, "HEAD"] if "GET" in allowed else allowed


def json_pointer(parts: Sequence[Any]) -> str:
    """RFC 6901: '/a/0/b', with '~' and '/' escaped inside names."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors as {pointer | parameter, detail}: where it was wrong, and how."""
    shown = []
    for error in errors:
        location, *rest = error.get("loc") or ("body",)
        item: dict[str, Any] = {"detail": error.get("msg", "invalid")}
        if location == "body":
            item["pointer"] = json_pointer(rest)
        elif location in _LOCATION_NAMES:
            item["parameter"] = ".".join(str(p) for p in rest)
            item["in"] = location
        else:
            item["pointer"] = json_pointer([location, *rest])
        shown.append(item)
    return shown


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(
            exc.kind,
            exc.detail,
            instance=request.url.path,
            headers=exc.headers or None,
            **exc.extensions,
        )

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        kind = STATUS_TO_TYPE.get(exc.status_code, ProblemType.BAD_REQUEST)
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and exc.detail == "Not Found":
            detail = f"no resource at {request.url.path}"
        elif exc.status_code == 405:
            allow = ", ".join(allowed_methods(request)) or headers.get("Allow", "")
            headers["Allow"] = allow
            detail = f"{request.method} is not allowed on {request.url.path}; use {allow}"
        elif exc.status_code == 400 and exc.detail == _BODY_PARSE_FAILURE:
            kind = ProblemType.MALFORMED_REQUEST
            detail = "request body could not be read as JSON (send UTF-8 encoded JSON)"
        else:
            detail = str(exc.detail)
        status_for_unknown = exc.status_code if exc.status_code not in STATUS_TO_TYPE else None
        response = problem_response(
            kind, detail, instance=request.url.path, headers=headers or None
        )
        if status_for_unknown:
            response.status_code = status_for_unknown
        return response

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        malformed = [e for e in errors if e.get("type") == "json_invalid"]
        if malformed:
            ctx = malformed[0].get("ctx") or {}
            reason = ctx.get("error", "not valid JSON")
            return problem_response(
                ProblemType.MALFORMED_REQUEST,
                f"request body is not valid JSON: {reason}",
                instance=request.url.path,
            )
        shown = validation_errors(errors)
        first = shown[0]
        where = first.get("pointer") or first.get("parameter") or "body"
        return problem_response(
            ProblemType.VALIDATION,
            f"{where or '/'}: {first['detail']}"
            + (f" (and {len(shown) - 1} more)" if len(shown) > 1 else ""),
            instance=request.url.path,
            errors=shown,
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
