"""API keys: made, listed and revoked by their user; checked on every request that sends one.

A key is ``sb_live_`` and 43 base62 characters (256 random bits). Only its SHA-256 is stored:
a fast hash is right for a secret that random, and it is checked on every request (argon2
would cost tens of milliseconds each time). Its first characters (``prefix``) are kept to tell
keys apart; they leave 208 random bits unknown.

A key acts as its user in the user's own scope: as a user even when its owner is an
administrator, unless it was made with ``admin`` by an administrator (and the owner still is
one). Revoking is at once, everywhere: each request reads the key's row, there is no cache.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from typing import Any, Final
from uuid import UUID

from api.errors import INVALID_TOKEN, Conflict, Forbidden, NotFound, Unauthorized
from api.settings import Settings
from storage import api_keys as api_keys_store
from storage.api_keys import ApiKeyRow
from storage.db import Conn, PoolType
from storage.rows import UserRow

KEY_PREFIX: Final = "sb_live_"
_ALPHABET = string.ascii_letters + string.digits
# 43 characters of 62: log2(62) * 43 = 256 bits.
_RANDOM_CHARS = 43
_KEY = re.compile(rf"{KEY_PREFIX}[0-9A-Za-z]{{{_RANDOM_CHARS}}}")
# What a listing shows of a key: the fixed prefix and this many of its random characters.
_SHOWN_CHARS = 6
# A key's use is recorded at most this often: a write per request would double the cost of
# authenticating (and contend on the row when a service sends many requests at once).
TOUCH_EVERY_SECONDS: Final = 60

API_KEY_REVOKED: Final = "api_key_revoked"
API_KEY_EXPIRED: Final = "api_key_expired"
API_KEY_LIMIT_REACHED: Final = "api_key_limit_reached"
ADMIN_KEY_REFUSED: Final = "admin_required"
KEY_CANNOT_MAKE_KEYS: Final = "login_required"
_USER_FIELDS = tuple(UserRow.__annotations__)


def is_api_key(credential: str) -> bool:
    """Whether a credential is meant as an API key (an access token is a JWT, ``eyJ…``)."""
    return credential.startswith("sb_")


def new_key() -> tuple[str, bytes]:
    """A fresh key (shown once, to its owner) and the hash under which it is stored."""
    key = KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_CHARS))
    return key, hash_key(key)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_out(row: ApiKeyRow) -> dict[str, Any]:
    # The row holds what the owner may see and nothing else (no hash: see KEY_COLUMNS).
    return dict(row)


async def create(
    conn: Conn,
    settings: Settings,
    user: UserRow,
    *,
    name: str,
    expires_in_days: int | None,
    admin: bool,
    by_api_key: bool,
) -> dict[str, Any]:
    """Make a key for ``user``; the answer holds the key itself, which is never shown again."""
    if by_api_key:
        # A leaked key must not be able to outlive its own revocation by minting others.
        raise Forbidden(
            "API keys are made with a login's access token, not with another API key",
            code=KEY_CANNOT_MAKE_KEYS,
        )
    if admin and user["role"] != "admin":
        raise Forbidden("Only an administrator can make an admin key", code=ADMIN_KEY_REFUSED)
    key, key_hash = new_key()
    async with conn.transaction():
        if not await api_keys_store.lock_owner(conn, user["id"]):
            raise Unauthorized(INVALID_TOKEN)
        limit = settings.api_keys_per_user
        if await api_keys_store.count_active(conn, user["id"]) >= limit:
            raise Conflict(
                f"You have {limit} API keys that still work, the most allowed; revoke one first",
                code=API_KEY_LIMIT_REACHED,
            )
        row = await api_keys_store.insert(
            conn,
            user_id=user["id"],
            name=name,
            prefix=key[: len(KEY_PREFIX) + _SHOWN_CHARS],
            key_hash=key_hash,
            admin=admin,
            expires_in_days=expires_in_days,
        )
    return {**key_out(row), "key": key}


async def list_keys(
    conn: Conn, user_id: UUID, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    rows, total = await api_keys_store.list_for(conn, user_id, limit=limit, offset=offset)
    return [key_out(row) for row in rows], total


async def revoke(conn: Conn, user_id: UUID, key_id: UUID) -> None:
    """Revoke the user's key; another user's key is a 404, as one that does not exist."""
    if not await api_keys_store.revoke(conn, key_id, user_id):
        raise NotFound("API key not found")


async def authenticate(pool: PoolType, key: str) -> UserRow:
    """The user ``key`` acts as, its role the key's scope; 401 for anything else: a key that
    is malformed, unknown, revoked (``api_key_revoked``) or expired (``api_key_expired``), or
    whose user is gone."""
    if not _KEY.fullmatch(key):
        raise Unauthorized(INVALID_TOKEN)
    async with pool.connection() as conn:
        found = await api_keys_store.authenticate(conn, hash_key(key), TOUCH_EVERY_SECONDS)
        if found is None:
            raise Unauthorized(INVALID_TOKEN)
        if found["revoked"]:
            raise Unauthorized("This API key was revoked", code=API_KEY_REVOKED)
        if found["expired"]:
            raise Unauthorized("This API key has expired", code=API_KEY_EXPIRED)
        if found["touch_due"]:
            await api_keys_store.touch(conn, found["key_id"], TOUCH_EVERY_SECONDS)
    user: dict[str, Any] = {k: found[k] for k in _USER_FIELDS}
    if not (found["key_admin"] and user["role"] == "admin"):
        user["role"] = "user"
    return user  # type: ignore[return-value]
