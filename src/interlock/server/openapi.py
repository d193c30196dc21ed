"""The OpenAPI document: FastAPI's, plus the problem responses every operation can give.

FastAPI documents what a route returns on success and a 422 in its own shape. Every error of
ours is an RFC 9457 problem (`application/problem+json`), so this module declares, for each
operation, the problem statuses it can answer with, worked out from what the route is: its
parameters and body, its method and path, and its dependencies (a Requirement means 401/403,
the rate limiter 429, If-Match 412/428). Nothing here is per route, so a route added later is
documented correctly without touching this file; a status a route gives for its own reasons
is declared on the route (`responses={401: {...}}`) and gets the Problem schema here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from interlock.server.auth.deps import SESSION_COOKIE, Requirement, authenticate, get_limiter
from interlock.server.problems import PROBLEM_JSON, STATUS_TITLES, ProblemType

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# FastAPI's own 422 shape, replaced by the problem; dropped when nothing refers to it any more.
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem: `type` is stable, `detail` says what was wrong.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "enum": sorted(kind.uri for kind in ProblemType),
            "description": "Identifies the kind of problem; GET it for its meaning.",
        },
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The path that was requested."},
        "errors": {
            "type": "array",
            "description": "For invalid input: where each error is, and what it is.",
            "items": {"$ref": "#/components/schemas/ProblemError"},
        },
        "request_id": {"type": "string", "description": "Quote it when reporting a 500."},
        "current_etag": {"type": "string", "description": "On 412: the version now stored."},
    },
    "additionalProperties": True,
}
PROBLEM_ERROR_SCHEMA: dict[str, Any] = {
    "title": "ProblemError",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string"},
        "pointer": {"type": "string", "description": "JSON pointer into the request body."},
        "parameter": {"type": "string", "description": "Name of the parameter."},
        "in": {"type": "string", "enum": ["path", "query", "header", "cookie"]},
    },
    "additionalProperties": True,
}
SECURITY_SCHEMES: dict[str, Any] = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key, sent as `Authorization: Bearer KEY`.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The admin UI's session (unsafe methods also need X-CSRF-Token).",
    },
}
RATE_LIMIT_HEADERS = {
    name: {"description": description, "schema": {"type": "integer"}}
    for name, description in (
        ("Retry-After", "Seconds to wait before retrying."),
        ("RateLimit-Limit", "Requests allowed in the window."),
        ("RateLimit-Remaining", "Requests left in the window."),
        ("RateLimit-Reset", "Seconds until the window resets."),
    )
}


def install_openapi(app: FastAPI, json_prefixes: tuple[str, ...]) -> None:
    """Serve FastAPI's document with the problem responses added (computed once per route set).

    `json_prefixes`: paths whose request bodies must be JSON (415 otherwise).
    """
    generate: Callable[[], dict[str, Any]] = app.openapi
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        base = generate()  # FastAPI caches it until the routes change
        if cache.get("base") is not base:
            cache["document"] = with_problems(copy.deepcopy(base), app, json_prefixes)
            cache["base"] = base
        document: dict[str, Any] = cache["document"]
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def with_problems(
    document: dict[str, Any], app: FastAPI, json_prefixes: tuple[str, ...]
) -> dict[str, Any]:
    dependants = dict(_route_dependants(app))
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    # Copies: whoever edits the served document must not edit these constants.
    schemas["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)
    schemas["ProblemError"] = copy.deepcopy(PROBLEM_ERROR_SCHEMA)
    security_used = False
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            dependant = dependants.get((method.upper(), path))
            calls = set(_calls(dependant)) if dependant is not None else set()
            authenticated = authenticate in calls or any(
                isinstance(call, Requirement) for call in calls
            )
            statuses = _problem_statuses(
                path, method.upper(), operation, calls, authenticated, json_prefixes
            )
            responses = operation.setdefault("responses", {})
            # What a route declares for its own reasons: a problem too, unless it has a model.
            for code, response in responses.items():
                if code.isdigit() and int(code) >= 400 and not _has_model(response, code):
                    statuses.add(int(code))
            for status in sorted(statuses):
                responses[str(status)] = _problem_response(status, responses.get(str(status)))
            if authenticated:
                operation["security"] = [{"apiKey": []}, {"session": []}]
                security_used = True
    if security_used:
        components.setdefault("securitySchemes", {}).update(copy.deepcopy(SECURITY_SCHEMES))
    for name in FASTAPI_VALIDATION_SCHEMAS:  # in order: the first refers to the second
        if f'"#/components/schemas/{name}"' not in json.dumps(document):
            schemas.pop(name, None)
    return document


def _problem_statuses(
    path: str,
    method: str,
    operation: dict[str, Any],
    calls: set[object],
    authenticated: bool,
    json_prefixes: tuple[str, ...],
) -> set[int]:
    """The problem statuses this operation can give, from what it takes and depends on."""
    # 400: any URL may be malformed (a NUL in it), any body-carrying method's Content-Length.
    statuses = {400, 500}
    parameters = operation.get("parameters", [])
    if parameters or "requestBody" in operation:
        statuses.add(422)
    if "requestBody" in operation:
        statuses.add(413)  # BodyGuardMiddleware, when the route reads the body
        if path.startswith(json_prefixes):
            statuses.add(415)
    if authenticated:
        # 403 also covers a session's missing CSRF token; 404 a project or resource the
        # caller may not see, or one a body names that does not exist.
        statuses |= {401, 403, 404}
    if any(p.get("in") == "path" for p in parameters):
        statuses.add(404)
    if get_limiter in calls:
        statuses.add(429)
    if authenticated and method not in SAFE_METHODS:
        statuses.add(409)
    if any(p.get("in") == "header" and p["name"].lower() == "if-match" for p in parameters):
        statuses |= {412, 428}
    return statuses


def _problem_response(status: int, existing: dict[str, Any] | None) -> dict[str, Any]:
    titles = [title for code, title in STATUS_TITLES.values() if code == status]
    description = (existing or {}).get("description") or " / ".join(dict.fromkeys(titles))
    response: dict[str, Any] = {
        "description": description or "Problem",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status == 429:
        response["headers"] = copy.deepcopy(RATE_LIMIT_HEADERS)
    elif status == 401:
        response["headers"] = {
            "WWW-Authenticate": {
                "description": "How to authenticate.",
                "schema": {"type": "string"},
            }
        }
    return response


def _has_model(response: dict[str, Any], code: str) -> bool:
    """Whether a route-declared error response has a schema of its own (e.g. readyz's 503)."""
    if code == "422":
        return False  # FastAPI's default, always replaced
    return any(media.get("schema") for media in response.get("content", {}).values())


def _calls(dependant: Dependant) -> Iterator[object]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _route_dependants(app: FastAPI) -> Iterator[tuple[tuple[str, str], Dependant]]:
    """((METHOD, path), dependant) for every API route, through included routers."""
    # FastAPI >= 0.16x keeps included routers whole; older versions flatten them into app.routes.
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: list[Any] = list(iterate(app.routes)) if iterate else list(app.routes)
    for route in routes:
        if isinstance(getattr(route, "original_route", route), APIRoute):
            for method in route.methods:
                yield (method, route.path_format), route.dependant
