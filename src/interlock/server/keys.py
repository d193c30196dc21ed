"""Keys (slugs), names and descriptions of projects and environments."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SLUG_RULE = "1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(value: str) -> str:
    # A name is shown on one line; NUL in particular cannot be stored by PostgreSQL at all.
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (newlines, tabs, NUL)")
    return value


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database
    # (and rather than accept on SQLite what PostgreSQL would refuse).
    if "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return value


Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, strip_whitespace=True),
    AfterValidator(_one_line),
]
Description = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_no_nul)]
