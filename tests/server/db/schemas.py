"""Empty databases (nothing migrated) on both backends, for tests of migrations and first start."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import PG_ADMIN_URL

_counter = itertools.count()


@contextmanager
def empty_postgres_schema() -> Iterator[str]:
    """The URL of a new, empty schema in database `test`, dropped afterwards."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    schema = f"interlock_empty_{worker}_{os.getpid()}_{next(_counter)}"
    admin = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL leg skipped: {PG_ADMIN_URL} is not reachable ({exc})")
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
