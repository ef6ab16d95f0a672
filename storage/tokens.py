"""Refresh tokens (stored hashed, grouped in rotation families) and the login-failure log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
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

# One client address's failures in the window: for one email, and across every email.
COUNT_RECENT_FAILURES = """
SELECT count(*) FILTER (WHERE email_key = %(email)s) AS failures,
       min(failed_at) FILTER (WHERE email_key = %(email)s) AS oldest,
       count(*) AS address_failures,
       min(failed_at) AS address_oldest
FROM login_failures
WHERE client_key = %(client)s AND failed_at > now() - make_interval(secs => %(window)s)
"""
INSERT_FAILURE = "INSERT INTO login_failures (email_key, client_key) VALUES (%s, %s)"
CLEAR_FAILURES = "DELETE FROM login_failures WHERE client_key = %s AND email_key = %s"
PRUNE_FAILURES = "DELETE FROM login_failures WHERE failed_at <= now() - make_interval(secs => %s)"
# Serializes the check-and-record of login attempts per client address, which covers both of its
# limits (two-int4 advisory key space, apart from the migration lock's bigint key).
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


@dataclass(frozen=True)
class RecentFailures:
    """One client address's failed logins within the window."""

    failures: int  # for the email
    oldest: datetime | None
    address_failures: int  # for every email
    address_oldest: datetime | None


async def recent_failures(
    conn: Conn, email_key: str, client_key: str, window_seconds: int
) -> RecentFailures:
    """How many logins from ``client_key`` failed within the window, and when the oldest did."""
    params = {"email": email_key, "client": client_key, "window": window_seconds}
    cur = await conn.execute(COUNT_RECENT_FAILURES, params)
    row = await cur.fetchone()
    assert row is not None
    return RecentFailures(
        row["failures"], row["oldest"], row["address_failures"], row["address_oldest"]
    )


async def record_failure(conn: Conn, email_key: str, client_key: str, window_seconds: int) -> None:
    await conn.execute(PRUNE_FAILURES, (window_seconds,))
    await conn.execute(INSERT_FAILURE, (email_key, client_key))


async def begin_attempt(
    conn: Conn,
    email_key: str,
    client_key: str,
    *,
    window_seconds: int,
    max_failures: int,
    max_address_failures: int,
) -> datetime | None:
    """Admit a login attempt for ``email_key`` from ``client_key`` unless a limit is reached.

    The limits are per client address: ``max_failures`` for this email, ``max_address_failures``
    across all emails. An admitted attempt is recorded as a failure up front (``clear_failures``
    removes it when the login succeeds), under a per-address lock, so parallel guesses cannot all
    pass the check before any of them is recorded.

    Returns:
        ``None`` when admitted, else when the limit that refused it lifts.
    """
    async with conn.transaction():
        await conn.execute(LOCK_LOGIN_KEY, (LOGIN_LOCK_CLASS, client_key))
        recent = await recent_failures(conn, email_key, client_key, window_seconds)
        window = timedelta(seconds=window_seconds)
        lifts = []
        if recent.failures >= max_failures and recent.oldest is not None:
            lifts.append(recent.oldest + window)
        if recent.address_failures >= max_address_failures and recent.address_oldest is not None:
            lifts.append(recent.address_oldest + window)
        if lifts:
            return max(lifts)
        await record_failure(conn, email_key, client_key, window_seconds)
        return None


async def clear_failures(conn: Conn, email_key: str, client_key: str) -> None:
    """Forget the failures of ``email_key`` from ``client_key`` (its login succeeded)."""
    await conn.execute(CLEAR_FAILURES, (client_key, email_key))
