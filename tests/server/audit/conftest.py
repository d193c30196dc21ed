from __future__ import annotations

from pathlib import Path

import pytest

from interlock.server.settings import Settings
from tests.conftest import make_settings


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """No embedded job runner: these tests count audit entries and compare whole tables, and
    a background job writing its own rows (or entries) meanwhile would be counted too."""
    return make_settings(database_url, tmp_path, jobs_runner=False)
