from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.db.schemas import empty_postgres_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it, not even the migrations."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'interlock.db'}"
        return
    with empty_postgres_schema() as url:
        yield url
