"""Schemathesis over the whole OpenAPI document, as an instance admin, on SQLite.

Every operation the app documents is generated for, valid and invalid input alike, so a
route added later is fuzzed without touching this file. A response fails the test if it is
a 5xx, or if its status, content type or body is not what the document declares.
`make test` runs a few examples per operation (seeded, so a failure reproduces); `make fuzz`
runs many more: INTERLOCK_FUZZ_EXAMPLES sets how many.

The app is built when this module is imported, because the tests are parametrized by the
operations of its document (schemathesis's fixture-based loader does not work with pytest 9).
It has a SQLite database of its own in a temporary directory, shared by all operations, so
what one operation creates the next may find.

Below it, a deterministic test sends hostile parameter values (NUL, ids out of range,
moments that overflow) to every operation on both databases, for what only PostgreSQL
minds and what the fuzzer rarely draws.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from interlock.server.app import create_app
from interlock.server.auth import service as auth
from interlock.server.auth.roles import Role
from interlock.server.bootstrap import prepare
from interlock.server.db.engine import Database
from interlock.server.pagination import encode_cursor
from interlock.server.problems import PROBLEM_JSON
from interlock.server.settings import Settings
from tests.conftest import make_settings
from tests.helpers import TEST_ACTOR

EXAMPLES = int(os.environ.get("INTERLOCK_FUZZ_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
NO_LIMIT = "1000000/minute"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def fuzz_target() -> tuple[FastAPI, str]:
    """An app on a SQLite database of its own, and an instance admin key for it."""
    data_dir = Path(tempfile.mkdtemp(prefix="interlock-fuzz-"))
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    settings = make_settings(
        f"sqlite:///{data_dir / 'interlock.db'}",
        data_dir,
        # Thousands of requests from one address and key in a minute: limits are not under test.
        rate_limit_per_ip=NO_LIMIT,
        rate_limit_per_key=NO_LIMIT,
        rate_limit_login=NO_LIMIT,
        login_lockout=None,
        # Background jobs would change state under the fuzzer and outlive the test.
        jobs_runner=False,
    )
    db = Database(settings.effective_database_url)
    atexit.register(db.dispose)
    prepare(settings, db)
    with db.write_session() as session:
        _, key = auth.create_key(session, TEST_ACTOR, name="fuzz", role=Role.ADMIN)
    return create_app(settings, db), key


def load_schema() -> tuple[Any, dict[str, str]]:
    app, key = fuzz_target()
    config = schemathesis.Config.from_dict(
        {
            "generation": {
                # The admin key goes with every request; no generated credentials instead.
                "with-security-parameters": False,
            },
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    return schema, {"Authorization": f"Bearer {key}"}


SCHEMA, ADMIN = load_schema()
OPERATIONS: list[Any] = []
UNREADABLE: list[str] = []
for result in SCHEMA.get_all_operations():
    if isinstance(result, Ok):
        OPERATIONS.append(result.ok())
    else:
        UNREADABLE.append(str(result.err()))


def test_schemathesis_can_read_every_operation() -> None:
    assert OPERATIONS
    assert not UNREADABLE


@pytest.mark.fuzz
# `make fuzz`'s many examples need more than the default timeout.
@pytest.mark.timeout(max(120, EXAMPLES * 3))
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_every_operation_answers_as_the_openapi_document_says(operation: Any) -> None:
    # One test per operation, parametrized here rather than by schemathesis's own pytest
    # plugin: under pytest 9 that plugin gives all its tests one node id, and pytest-xdist's
    # --dist loadgroup then runs only one of them.
    cases = st.one_of(
        # Some operations have nothing that can be made invalid: the valid cases carry them.
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=True,  # the same cases on every run, so a failure can be replayed
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=cases)
    def answers_as_documented(case: Any) -> None:
        case.call_and_validate(headers=ADMIN, checks=CHECKS)

    answers_as_documented()


# ---------------------------------------------------------------- hostile parameters, both DBs
#
# Schemathesis runs on SQLite only, and some input only hurts PostgreSQL (a NUL in a string)
# or is too rare for it to draw (a moment that overflows once converted to UTC). Each
# parameter of each operation gets a few such values here, one parameter at a time, on both
# databases; the answer must be a documented status, and a problem if it is a 4xx.

HOSTILE = {
    # A well-formed cursor of an id that cannot exist: cursors are strings to the document.
    "string": ["a\x00b", "x" * 5000, "%", "../../etc/passwd", "\u202e\ufeff", encode_cursor(2**31)],
    # 2**31: past PostgreSQL's INTEGER, within SQLite's; 2**63: past both.
    "integer": [str(2**31), str(2**63), str(-(2**63) - 1), "0", "1e400", "0x10"],
    "date-time": [
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        "2020-01-01T00:00:00",
        "2020-02-30T00:00:00Z",
    ],
}
# Real resources for the parameters not under attack, so the request gets as far as it can.
ORDINARY = {"project": "default", "environment": "development"}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path, rate_limit_per_ip=None, rate_limit_per_key=None)


def kind_of(schema: dict[str, Any]) -> str:
    for option in [schema, *schema.get("anyOf", [])]:
        if option.get("format") == "date-time":
            return "date-time"
        if option.get("type") in ("integer", "string"):
            return str(option["type"])
    return "string"


def test_hostile_parameters_get_a_documented_answer_never_a_500(admin: TestClient) -> None:
    document: dict[str, Any] = admin.app.openapi()  # type: ignore[attr-defined]
    wrong = []
    sent = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            parameters = operation.get("parameters", [])
            ordinary = {
                p["name"]: ORDINARY.get(
                    p["name"], "1" if kind_of(p["schema"]) == "integer" else "x"
                )
                for p in parameters
                if p["in"] == "path"
            }
            for parameter in parameters:
                # Query parameters of unsafe methods are left alone: with real resources in the
                # path, the request might do what it says.
                if parameter["in"] == "query" and method.upper() not in SAFE_METHODS:
                    continue
                if parameter["in"] not in ("path", "query"):
                    continue
                for value in HOSTILE[kind_of(parameter["schema"])]:
                    path_values = dict(ordinary)
                    query = {}
                    if parameter["in"] == "path":
                        path_values[parameter["name"]] = value
                    else:
                        query[parameter["name"]] = value
                    url = path
                    for name, given in path_values.items():
                        url = url.replace(f"{{{name}}}", quote(given, safe=""))
                    response = admin.request(method.upper(), url, params=query)
                    sent += 1
                    case = f"{method.upper()} {path} with {parameter['name']}={value[:40]!r}"
                    status = str(response.status_code)
                    if response.status_code >= 500 or status not in operation["responses"]:
                        wrong.append(f"{case}: {status} {response.text[:200]}")
                    elif response.status_code >= 400 and not response.headers.get(
                        "content-type", ""
                    ).startswith(PROBLEM_JSON):
                        wrong.append(f"{case}: a {status} that is not a problem")
    assert not wrong, f"{len(wrong)} of {sent} requests answered wrongly:\n" + "\n".join(wrong)
    assert sent > 50
