"""Refresh tokens (stored hashed, grouped in rotation families) and the login-failure log."""

from __future__ import annotations

from datetime import datetime
from typing import cast
from uuid import UUID

from storage.db import Conn
from storage.rows import RefreshTokenRow

INSERT_REFRESH = """
INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at)
VALUES (%s, %s, %s, %s)
"""
# FOR UPDATE serializes two concurrent uses of the same token: the second sees used_at set.
SELECT_REFRESH_FOR_UPDATE = """
SELECT id, user_id, family_id, expires_at, used_at, revoked_at, expires_at <= now() AS expired
FROM refresh_tokens WHERE token_hash = %s FOR UPDATE
"""
MARK_USED = "UPDATE refresh_tokens SET used_at = now() WHERE id = %s"
REVOKE_FAMILY = """
UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = %s AND revoked_at IS NULL
"""
SELECT_FAMILY_BY_HASH = "SELECT family_id FROM refresh_tokens WHERE token_hash = %s"

COUNT_RECENT_FAILURES = """
SELECT count(*) AS failures, min(failed_at) AS oldest
FROM login_failures WHERE email_key = %s AND failed_at > now() - make_interval(secs => %s)
"""
INSERT_FAILURE = "INSERT INTO login_failures (email_key) VALUES (%s)"
CLEAR_FAILURES = "DELETE FROM login_failures WHERE email_key = %s"
PRUNE_FAILURES = "DELETE FROM login_failures WHERE failed_at <= now() - make_interval(secs => %s)"
# Serializes the check-and-record of login attempts per email (two-int4 advisory key space, apart
# from the migration lock's bigint key).
LOCK_LOGIN_KEY = "SELECT pg_advisory_xact_lock(%s::int4, hashtext(%s))"
LOGIN_LOCK_CLASS = 0x4C4F47  # "LOG"


async def insert_refresh(
    conn: Conn, *, user_id: UUID, family_id: UUID, token_hash: bytes, expires_at: datetime
) -> None:
    await conn.execute(INSERT_REFRESH, (user_id, family_id, token_hash, expires_at))


async def lock_refresh(conn: Conn, token_hash: bytes) -> RefreshTokenRow | None:
    """Lock and return the refresh token row (run inside a transaction)."""
    cur = await conn.execute(SELECT_REFRESH_FOR_UPDATE, (token_hash,))
    return cast(RefreshTokenRow | None, await cur.fetchone())


async def mark_used(conn: Conn, token_id: UUID) -> None:
    await conn.execute(MARK_USED, (token_id,))


async def revoke_family(conn: Conn, family_id: UUID) -> None:
    await conn.execute(REVOKE_FAMILY, (family_id,))


async def family_of(conn: Conn, token_hash: bytes) -> UUID | None:
    cur = await conn.execute(SELECT_FAMILY_BY_HASH, (token_hash,))
    row = await cur.fetchone()
    return row["family_id"] if row else None


async def recent_failures(
    conn: Conn, email_key: str, window_seconds: int
) -> tuple[int, datetime | None]:
    """How many logins failed for ``email_key`` within the window, and when the oldest did."""
    cur = await conn.execute(COUNT_RECENT_FAILURES, (email_key, window_seconds))
    row = await cur.fetchone()
    assert row is not None
    return row["failures"], row["oldest"]


async def record_failure(conn: Conn, email_key: str, window_seconds: int) -> None:
    await conn.execute(PRUNE_FAILURES, (window_seconds,))
    await conn.execute(INSERT_FAILURE, (email_key,))


async def begin_attempt(
    conn: Conn, email_key: str, window_seconds: int, max_failures: int
) -> tuple[bool, datetime | None]:
    """Admit a login attempt for ``email_key`` unless the failure limit is reached.

    An admitted attempt is recorded as a failure up front (``clear_failures`` removes it when the
    login succeeds), under a per-email lock, so parallel guesses cannot all pass the check before
    any of them is recorded.

    Returns:
        ``(True, None)`` when admitted, else ``(False, oldest failure in the window)``.
    """
    async with conn.transaction():
        await conn.execute(LOCK_LOGIN_KEY, (LOGIN_LOCK_CLASS, email_key))
        failures, oldest = await recent_failures(conn, email_key, window_seconds)
        if failures >= max_failures:
            return False, oldest
        await record_failure(conn, email_key, window_seconds)
        return True, None


async def clear_failures(conn: Conn, email_key: str) -> None:
    await conn.execute(CLEAR_FAILURES, (email_key,))
