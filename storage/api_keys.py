"""API keys: long-lived credentials of a user, stored as the SHA-256 of the key."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, cast
from uuid import UUID

from storage.db import Conn
from storage.users import USER_COLUMNS


class ApiKeyRow(TypedDict):
    """A key as its owner sees it (never its hash)."""

    id: UUID
    name: str
    prefix: str
    admin: bool
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


KEY_COLUMNS = "id, name, prefix, admin, created_at, last_used_at, expires_at"
_USER_COLUMNS = ", ".join(f"u.{column.strip()}" for column in USER_COLUMNS.split(","))

# Locks the owner's row against another key being made at the same time (so two requests
# cannot both pass the count), but not against the key-share locks of foreign key checks:
# the user's chats and runs go on being inserted meanwhile. No row: the account is gone.
LOCK_OWNER = "SELECT id FROM users WHERE id = %s FOR NO KEY UPDATE"
COUNT_ACTIVE = """
SELECT count(*) AS n FROM api_keys
WHERE user_id = %s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
"""
INSERT_KEY = f"""
INSERT INTO api_keys (user_id, name, prefix, key_hash, admin, expires_at)
VALUES (%(user_id)s, %(name)s, %(prefix)s, %(key_hash)s, %(admin)s,
        now() + make_interval(days => %(days)s))
RETURNING {KEY_COLUMNS}
"""
# Revoked keys are gone for their owner; expired ones stay listed until revoked.
SELECT_KEYS = f"""
SELECT {KEY_COLUMNS}, count(*) OVER () AS total FROM api_keys
WHERE user_id = %s AND revoked_at IS NULL
ORDER BY created_at DESC, id
LIMIT %s OFFSET %s
"""
COUNT_LISTED = "SELECT count(*) AS n FROM api_keys WHERE user_id = %s AND revoked_at IS NULL"
REVOKE_KEY = """
UPDATE api_keys SET revoked_at = now()
WHERE id = %s AND user_id = %s AND revoked_at IS NULL
RETURNING id
"""
# The key and its user in one query: every request a key makes runs it.
AUTHENTICATE = f"""
SELECT k.id AS key_id, k.admin AS key_admin,
       k.revoked_at IS NOT NULL AS revoked,
       k.expires_at IS NOT NULL AND k.expires_at <= now() AS expired,
       k.last_used_at IS NULL
           OR k.last_used_at <= now() - make_interval(secs => %(every)s) AS touch_due,
       {_USER_COLUMNS}
FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.key_hash = %(key_hash)s
"""
# Conditional again: two requests that both saw an old last_used_at write it once.
TOUCH_KEY = """
UPDATE api_keys SET last_used_at = now()
WHERE id = %s AND (last_used_at IS NULL OR last_used_at <= now() - make_interval(secs => %s))
"""


async def lock_owner(conn: Conn, user_id: UUID) -> bool:
    """Lock the user's row until the transaction ends; ``False`` if the user is gone."""
    cur = await conn.execute(LOCK_OWNER, (user_id,))
    return await cur.fetchone() is not None


async def count_active(conn: Conn, user_id: UUID) -> int:
    """The user's keys that still work (neither revoked nor expired)."""
    cur = await conn.execute(COUNT_ACTIVE, (user_id,))
    row = await cur.fetchone()
    assert row is not None
    return int(row["n"])


async def insert(
    conn: Conn,
    *,
    user_id: UUID,
    name: str,
    prefix: str,
    key_hash: bytes,
    admin: bool,
    expires_in_days: int | None,
) -> ApiKeyRow:
    params = {
        "user_id": user_id,
        "name": name,
        "prefix": prefix,
        "key_hash": key_hash,
        "admin": admin,
        # now() + an interval of NULL days is NULL: a key without expiry.
        "days": expires_in_days,
    }
    cur = await conn.execute(INSERT_KEY, params)
    row = await cur.fetchone()
    assert row is not None
    return cast(ApiKeyRow, row)


async def list_for(
    conn: Conn, user_id: UUID, *, limit: int, offset: int
) -> tuple[list[ApiKeyRow], int]:
    cur = await conn.execute(SELECT_KEYS, (user_id, limit, offset))
    rows = await cur.fetchall()
    if not rows and offset:
        # Past the last page the window count is unknown; count what there is.
        total = await _count_listed(conn, user_id)
        return [], total
    total = rows[0]["total"] if rows else 0
    return [cast(ApiKeyRow, {k: v for k, v in row.items() if k != "total"}) for row in rows], total


async def _count_listed(conn: Conn, user_id: UUID) -> int:
    cur = await conn.execute(COUNT_LISTED, (user_id,))
    row = await cur.fetchone()
    assert row is not None
    return int(row["n"])


async def revoke(conn: Conn, key_id: UUID, user_id: UUID) -> bool:
    """Revoke the user's key; ``False`` if the user has no such key (or it was revoked)."""
    cur = await conn.execute(REVOKE_KEY, (key_id, user_id))
    return await cur.fetchone() is not None


async def authenticate(conn: Conn, key_hash: bytes, touch_every: int) -> dict[str, Any] | None:
    """The key with this hash and its user's row (``UserRow`` columns, plus ``key_id``,
    ``key_admin``, ``revoked``, ``expired`` and ``touch_due``), or ``None``."""
    cur = await conn.execute(AUTHENTICATE, {"key_hash": key_hash, "every": touch_every})
    return await cur.fetchone()


async def touch(conn: Conn, key_id: UUID, every: int) -> None:
    """Record a use of the key, unless one was recorded less than ``every`` seconds ago."""
    await conn.execute(TOUCH_KEY, (key_id, every))
