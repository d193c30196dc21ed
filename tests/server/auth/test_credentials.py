"""The API key format, digests, session tokens and password hashes. Database-free."""

from __future__ import annotations

import hashlib
import math
import secrets
import string

import pytest

from interlock.server.auth import credentials
from interlock.server.auth.credentials import (
    KIND_CODES,
    PREFIX,
    digest,
    key_hint,
    looks_like_api_key,
    new_api_key,
)
from interlock.server.auth.roles import Role

ROLES = list(Role)


@pytest.mark.parametrize("role", ROLES, ids=str)
def test_a_key_starts_with_the_prefix_and_its_kind_code(role: Role) -> None:
    key = new_api_key(role)
    assert key.startswith(f"{PREFIX}{KIND_CODES[role]}_")
    assert looks_like_api_key(key)


def test_every_role_has_its_own_kind_code() -> None:
    assert set(KIND_CODES) == set(Role)
    assert len(set(KIND_CODES.values())) == len(Role)


def test_a_key_carries_at_least_128_random_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []
    real_randbits = secrets.randbits

    def recording_randbits(bits: int) -> int:
        asked.append(bits)
        return real_randbits(bits)

    # credentials draws through the `secrets` module, so patching it there is seen.
    monkeypatch.setattr(secrets, "randbits", recording_randbits)
    key = new_api_key(Role.ADMIN)
    assert sum(asked) >= 128
    # The body must have room for every bit drawn: no truncation of the randomness.
    body = key.removeprefix(f"{PREFIX}{KIND_CODES[Role.ADMIN]}_")
    assert math.log2(62) * (len(body) - 6) >= sum(asked)


def test_keys_do_not_repeat() -> None:
    keys = {new_api_key(Role.SDK_SERVER) for _ in range(2000)}
    assert len(keys) == 2000


def test_the_body_of_a_key_is_plain_base62() -> None:
    allowed = set(string.ascii_letters + string.digits)
    for role in ROLES:
        body = new_api_key(role).removeprefix(f"{PREFIX}{KIND_CODES[role]}_")
        assert set(body) <= allowed


def _substitute(text: str, index: int) -> str:
    replacement = "a" if text[index] != "a" else "b"
    return text[:index] + replacement + text[index + 1 :]


def test_any_one_mistyped_character_is_refused() -> None:
    key = new_api_key(Role.ADMIN)
    for index in range(len(key)):
        assert not looks_like_api_key(_substitute(key, index)), index


def test_any_two_swapped_neighbours_are_refused() -> None:
    key = new_api_key(Role.EDITOR)
    for index in range(len(key) - 1):
        if key[index] == key[index + 1]:
            continue
        swapped = key[:index] + key[index + 1] + key[index] + key[index + 2 :]
        assert not looks_like_api_key(swapped), index


def test_a_truncated_or_extended_key_is_refused() -> None:
    key = new_api_key(Role.VIEWER)
    for length in range(len(key)):
        assert not looks_like_api_key(key[:length]), length
    assert not looks_like_api_key(key + "0")
    assert not looks_like_api_key(" " + key)


def test_changing_the_kind_code_of_a_key_breaks_its_checksum() -> None:
    key = new_api_key(Role.VIEWER)
    upgraded = key.replace(f"_{KIND_CODES[Role.VIEWER]}_", f"_{KIND_CODES[Role.ADMIN]}_", 1)
    assert upgraded != key
    assert not looks_like_api_key(upgraded)


@pytest.mark.parametrize(
    "candidate",
    ["", "ilk_", "Bearer", "ilk_xyz_" + "0" * 33, "not a key at all", "ilk_adm_" + "é" * 33],
)
def test_things_that_are_not_keys_are_refused(candidate: str) -> None:
    assert not looks_like_api_key(candidate)


@pytest.mark.parametrize("role", ROLES, ids=str)
def test_the_hint_identifies_a_key_without_revealing_it(role: Role) -> None:
    key = new_api_key(role)
    hint = key_hint(key)
    shown = hint.rstrip("…")
    assert key.startswith(shown)
    assert shown.startswith(f"{PREFIX}{KIND_CODES[role]}_")
    # At most four characters of the random part: far too little to guess the rest.
    assert len(shown) <= len(f"{PREFIX}{KIND_CODES[role]}_") + 4
    assert not looks_like_api_key(hint)


def test_the_digest_is_sha256_of_the_whole_key() -> None:
    key = new_api_key(Role.ADMIN)
    assert digest(key) == hashlib.sha256(key.encode()).hexdigest()
    assert key not in digest(key)
    assert digest(key) != digest(new_api_key(Role.ADMIN))


def test_session_tokens_are_long_and_unique() -> None:
    tokens = {credentials.new_session_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(t) >= 43 for t in tokens)  # 32 random bytes in URL-safe base64


def test_the_csrf_token_is_bound_to_the_session_and_the_secret() -> None:
    token = credentials.csrf_token("secret", "session-a")
    assert token == credentials.csrf_token("secret", "session-a")
    assert token != credentials.csrf_token("secret", "session-b")
    assert token != credentials.csrf_token("other secret", "session-a")


def test_passwords_are_hashed_with_argon2id_and_verified() -> None:
    hashed = credentials.hash_password("correct horse battery", "minimum")
    assert hashed.startswith("$argon2id$")
    assert "correct horse battery" not in hashed
    assert credentials.verify_password(hashed, "correct horse battery")
    assert not credentials.verify_password(hashed, "correct horse batterz")


def test_the_minimum_cost_is_cheaper_than_the_default() -> None:
    cheap = credentials.password_hasher("minimum")
    default = credentials.password_hasher("default")
    assert cheap.memory_cost < default.memory_cost
    # A hash made at either cost verifies with the default hasher: the cost is in the hash.
    assert credentials.verify_password(credentials.hash_password("p" * 12, "minimum"), "p" * 12)


def test_a_malformed_stored_hash_never_verifies() -> None:
    assert not credentials.verify_password("not-a-hash", "anything")
