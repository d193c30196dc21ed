"""API key format, session tokens and password hashing.

A key looks like `ilk_srv_3q9Xk...Zf01Ab`: the `ilk_` prefix makes a leaked key easy to spot
(secret scanners match it), the kind code says what it can do, the body carries 160 random
bits, and the last six characters are a CRC-32 of the rest, so a mistyped or truncated key is
refused without a database lookup. Only the SHA-256 digest of a key is stored: with this
much entropy a fast hash is as safe as a slow one, and a slow one would cost tens of
milliseconds per request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import CHEAPEST, RFC_9106_LOW_MEMORY

from interlock.server.auth.roles import Role

PREFIX = "ilk_"
KIND_CODES = {
    Role.ADMIN: "adm",
    Role.EDITOR: "edt",
    Role.VIEWER: "vwr",
    Role.SDK_SERVER: "srv",
    Role.SDK_CLIENT: "cli",
}
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LENGTH = 27  # 160 bits in base62
_CHECKSUM_LENGTH = 6
_KEY_PATTERN = re.compile(
    rf"^{PREFIX}(adm|edt|vwr|srv|cli)_[0-9A-Za-z]{{{_BODY_LENGTH + _CHECKSUM_LENGTH}}}$"
)


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(_ALPHABET[remainder])
    return "".join(reversed(digits)).rjust(width, "0")


def _checksum(text: str) -> str:
    return _base62(zlib.crc32(text.encode()), _CHECKSUM_LENGTH)


def new_api_key(role: Role) -> str:
    head = f"{PREFIX}{KIND_CODES[role]}_{_base62(secrets.randbits(160), _BODY_LENGTH)}"
    return head + _checksum(head)


def looks_like_api_key(candidate: str) -> bool:
    """Format and checksum only: says nothing of whether the key exists."""
    if not _KEY_PATTERN.match(candidate):
        return False
    head, checksum = candidate[:-_CHECKSUM_LENGTH], candidate[-_CHECKSUM_LENGTH:]
    return hmac.compare_digest(_checksum(head), checksum)


def key_hint(key: str) -> str:
    """Enough of a key to recognise it in a list; far too little to use it."""
    return key[: len(PREFIX) + 4 + 4] + "…"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_token(secret_key: str, session_token: str) -> str:
    """Bound to the session, so it needs no storage and dies with the session."""
    return hmac.new(secret_key.encode(), b"csrf:" + session_token.encode(), "sha256").hexdigest()


@lru_cache(maxsize=2)
def password_hasher(cost: str = "default") -> PasswordHasher:
    profile = CHEAPEST if cost == "minimum" else RFC_9106_LOW_MEMORY
    return PasswordHasher.from_parameters(profile)


def hash_password(password: str, cost: str = "default") -> str:
    return password_hasher(cost).hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        # Verification reads the cost from the hash itself, so either hasher works.
        return password_hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Compared against when the account does not exist, so timing does not reveal which emails do.
_DUMMY_HASH: dict[str, str] = {}


def dummy_verify(cost: str) -> None:
    if cost not in _DUMMY_HASH:
        _DUMMY_HASH[cost] = hash_password(secrets.token_hex(8), cost)
    verify_password(_DUMMY_HASH[cost], "not the password")
