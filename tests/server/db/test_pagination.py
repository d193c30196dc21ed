"""Cursors: opaque to clients, and anything a client makes up is a 400, never a 500."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.server.pagination import MAX_ID, decode_cursor, encode_cursor
from interlock.server.problems import Problem, ProblemType


@given(st.integers(min_value=1, max_value=MAX_ID))
def test_a_cursor_given_out_decodes_to_its_id(last_id: int) -> None:
    assert decode_cursor(encode_cursor(last_id)) == last_id


def assert_valid_or_bad_request(cursor: str) -> None:
    try:
        value = decode_cursor(cursor)
    except Problem as problem:
        assert problem.kind is ProblemType.BAD_REQUEST
    else:
        assert 1 <= value <= MAX_ID


@given(st.text(max_size=200))
def test_any_text_decodes_to_a_valid_id_or_is_a_bad_request(cursor: str) -> None:
    assert_valid_or_bad_request(cursor)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


@given(st.one_of(JSON, st.builds(lambda v: {"after": v}, JSON)))
def test_any_base64_json_decodes_to_a_valid_id_or_is_a_bad_request(value: Any) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    assert_valid_or_bad_request(cursor)


@pytest.mark.parametrize("value", [0, -1, MAX_ID + 1])
def test_an_id_out_of_range_is_a_bad_request(value: int) -> None:
    with pytest.raises(Problem) as caught:
        decode_cursor(encode_cursor(value))
    assert caught.value.kind is ProblemType.BAD_REQUEST
