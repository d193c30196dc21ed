"""An entry's hash is computed before it is stored and checked after it is read back: the
canonical content must survive both databases' round trip exactly."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from interlock.server.audit import service
from interlock.server.audit.models import AuditEntry
from interlock.server.audit.service import Actor, canonical, entry_hash, record, verify
from interlock.server.db.engine import Database

ACTOR = Actor(type="key", id="42", name="key:ünïcødé ☃ 鍵", request_id="req-1")

NESTED: dict[str, Any] = {
    "name": "Ünïcødé 名前 🚀 e\u0301",
    "empty": "",
    "nothing": None,
    "flags": [True, False, None],
    "numbers": {"int": -7, "big": 2**70, "float": 0.1, "negative_zero": -0.0, "exp": 1e-300},
    "deep": {"z": {"y": {"x": [1, {"w": ["v", []]}, {}]}}},
    'quote " and \\ backslash': "line\nbreak\ttab",
}


def read_back(db: Database, seq: int) -> AuditEntry:
    with db.read_session() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.seq == seq))
        assert entry is not None
        return entry


def append(db: Database, **content: Any) -> tuple[int, bytes, str]:
    with db.write_session() as session:
        entry = record(session, ACTOR, "thing.update", "thing", "thing/1", **content)
        return entry.seq, canonical(entry), entry.hash


@pytest.mark.parametrize(
    "at",
    [
        datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds: isoformat omits them
        datetime(2030, 1, 2, 3, 4, 5, 999999, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
    ],
)
def test_an_entry_hashes_the_same_after_the_round_trip(
    db: Database, monkeypatch: pytest.MonkeyPatch, at: datetime
) -> None:
    monkeypatch.setattr(service, "utcnow", lambda: at)
    seq, written, hashed = append(
        db, project_key="shop", before=NESTED, after={**NESTED, "name": "changed"}
    )
    stored = read_back(db, seq)
    assert stored.at == at
    assert canonical(stored) == written
    assert entry_hash(stored.prev_hash, stored) == stored.hash == hashed
    with db.read_session() as session:
        assert verify(session).ok


def test_values_json_does_not_have_are_hashed_as_they_will_be_read_back(db: Database) -> None:
    """Tuples, datetimes, non-string keys: stored as JSON gives them back, so hashed that way."""
    when = datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    seq, written, _ = append(db, after={"pair": (1, 2), "when": when, "by id": {3: "three"}})
    stored = read_back(db, seq)
    assert stored.after == {"pair": [1, 2], "when": str(when), "by id": {"3": "three"}}
    assert canonical(stored) == written
    with db.read_session() as session:
        assert verify(session).ok


def test_null_and_empty_snapshots_survive_the_round_trip(db: Database) -> None:
    seq, written, _ = append(db, before=None, after={})
    stored = read_back(db, seq)
    assert (stored.before, stored.after, stored.project_key) == (None, {}, None)
    assert canonical(stored) == written


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    # PostgreSQL's text cannot hold NUL, nor UTF-8 a lone surrogate: neither reaches here
    # from a request that was parsed and validated.
    | st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(before=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5))
def test_any_json_snapshot_hashes_the_same_after_the_round_trip(
    db: Database, before: dict[str, Any]
) -> None:
    seq, written, hashed = append(db, before=before)
    stored = read_back(db, seq)
    assert canonical(stored) == written
    assert entry_hash(stored.prev_hash, stored) == hashed


def test_the_canonical_form_is_pinned() -> None:
    """Changing it would break every chain already written: this must never change."""
    entry = AuditEntry(
        seq=3,
        at=datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        actor_type="user",
        actor_id="7",
        actor_name="ada@example.com",
        action="project.update",
        resource_type="project",
        resource_id="shop",
        project_key="shop",
        before={"name": "Shop", "b": [1, None]},
        after={"name": "Café ☕", "b": [1, None]},
        request_id=None,
    )
    assert canonical(entry) == (
        b'{"action":"project.update","actor_id":"7","actor_name":"ada@example.com",'
        b'"actor_type":"user","after":{"b":[1,null],"name":"Caf\\u00e9 \\u2615"},'
        b'"at":"2030-01-02T03:04:05.000006+00:00","before":{"b":[1,null],"name":"Shop"},'
        b'"project_key":"shop","request_id":null,"resource_id":"shop",'
        b'"resource_type":"project","seq":3}'
    )
    prev = "ab" * 32
    assert entry_hash(prev, entry) == hashlib.sha256(prev.encode() + canonical(entry)).hexdigest()


def test_reordered_keys_hash_alike() -> None:
    def entry(after: dict[str, Any]) -> AuditEntry:
        return AuditEntry(
            seq=1,
            at=datetime(2030, 1, 1, tzinfo=UTC),
            actor_type="system",
            actor_id="system",
            actor_name="interlock",
            action="a",
            resource_type="r",
            resource_id="1",
            project_key=None,
            before=None,
            after=after,
            request_id=None,
        )

    assert canonical(entry({"a": 1, "b": {"c": 2, "d": 3}})) == canonical(
        entry({"b": {"d": 3, "c": 2}, "a": 1})
    )
