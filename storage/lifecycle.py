"""Thread lifecycle: each chat's time to live, and finding the threads it has run out for.

A chat's ttl counts from its ``updated_at`` (``expires_at`` follows it by a trigger, migration
0019); a chat without a ttl of its own follows the server's default, given to each query here.
A thread is swept only while it has no active run: the sweep locks the chat's row, which a
run's insert (its foreign key) waits for, so no run starts on a thread being swept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypedDict, cast
from uuid import UUID

from storage.db import Conn

Strategy = Literal["delete", "keep_latest"]

# A key of its own in the bigint advisory-lock space (the migration lock has another): one
# process sweeps at a time.
SWEEP_LOCK_KEY = 0x5357_5454_4C00_0001
TRY_SWEEP_LOCK = "SELECT pg_try_advisory_lock(%s) AS locked"
UNLOCK_SWEEP = "SELECT pg_advisory_unlock(%s) AS unlocked"

SET_TTL = """
UPDATE chats SET ttl_minutes = %(minutes)s, ttl_strategy = %(strategy)s, updated_at = now()
WHERE id = %(id)s AND user_id = %(user_id)s
RETURNING id
"""
SELECT_TTL = """
SELECT ttl_minutes, ttl_strategy, expires_at, updated_at FROM chats
WHERE id = %(id)s AND user_id = %(user_id)s
"""

_ACTIVE = """EXISTS (SELECT 1 FROM runs r WHERE r.chat_id = c.id
                    AND r.status IN ('pending', 'running'))"""
# Not pruned by a keep_latest sweep since it last changed.
_NOT_PRUNED = "(c.pruned_at IS NULL OR c.pruned_at < c.updated_at)"
# Expired threads, with the strategy that applies to each, oldest expiry first: those with a
# ttl of their own, then (when the server has a default) the others, each through its index.
# Busy ones are left for a later sweep.
EXPIRED = f"""
(SELECT c.id, c.ttl_strategy AS strategy, c.expires_at AS due FROM chats c
 WHERE c.expires_at <= now() AND {_NOT_PRUNED} AND NOT {_ACTIVE}
 ORDER BY c.expires_at LIMIT %(limit)s)
UNION ALL
(SELECT c.id, %(default_strategy)s::text AS strategy,
        c.updated_at + %(default_minutes)s::float8 * interval '1 minute' AS due FROM chats c
 WHERE %(default_minutes)s::float8 IS NOT NULL AND c.ttl_minutes IS NULL
   AND c.updated_at <= now() - %(default_minutes)s::float8 * interval '1 minute'
   AND {_NOT_PRUNED} AND NOT {_ACTIVE}
 ORDER BY c.updated_at LIMIT %(limit)s)
ORDER BY due LIMIT %(limit)s
"""
# One expired thread, locked for its sweep, if it still is expired (another process or a new
# run may have got there first): its strategy. Whether it is idle is asked once it is locked
# (``ACTIVE``): a run that committed while this statement ran is seen by the next one.
LOCK_EXPIRED = f"""
SELECT coalesce(c.ttl_strategy, %(default_strategy)s::text) AS strategy FROM chats c
WHERE c.id = %(id)s AND {_NOT_PRUNED}
  AND (c.expires_at <= now()
       OR (%(default_minutes)s::float8 IS NOT NULL AND c.ttl_minutes IS NULL
           AND c.updated_at <= now() - %(default_minutes)s::float8 * interval '1 minute'))
FOR UPDATE OF c SKIP LOCKED
"""
# A thread of the user's, locked (a prune by hand).
LOCK_OWNED = """
SELECT c.id FROM chats c WHERE c.id = %(id)s AND c.user_id = %(user_id)s FOR UPDATE OF c
"""
ACTIVE = f"SELECT {_ACTIVE} AS active FROM chats c WHERE c.id = %s"
DELETE_CHAT = "DELETE FROM chats WHERE id = %s"
MARK_PRUNED = "UPDATE chats SET pruned_at = now() WHERE id = %s"
# Which of these ids are the user's threads.
SELECT_OWNED_IDS = "SELECT id FROM chats WHERE user_id = %(user_id)s AND id = ANY(%(ids)s::uuid[])"


class TtlRow(TypedDict):
    ttl_minutes: float | None
    ttl_strategy: Strategy | None
    expires_at: datetime | None
    updated_at: datetime


class Expired(TypedDict):
    id: UUID
    strategy: Strategy
    due: datetime


async def try_sweep_lock(conn: Conn) -> bool:
    """Take the sweep's session lock on ``conn`` if no other process holds it."""
    cur = await conn.execute(TRY_SWEEP_LOCK, (SWEEP_LOCK_KEY,))
    row = await cur.fetchone()
    return bool(row and row["locked"])


async def release_sweep_lock(conn: Conn) -> None:
    await conn.execute(UNLOCK_SWEEP, (SWEEP_LOCK_KEY,))


async def set_ttl(
    conn: Conn, user_id: UUID, chat_id: UUID, minutes: float, strategy: Strategy
) -> bool:
    """Give the user's chat a ttl (counted from now); ``False`` if it is not theirs."""
    params = {"id": chat_id, "user_id": user_id, "minutes": minutes, "strategy": strategy}
    cur = await conn.execute(SET_TTL, params)
    return await cur.fetchone() is not None


async def get_ttl(conn: Conn, user_id: UUID, chat_id: UUID) -> TtlRow | None:
    cur = await conn.execute(SELECT_TTL, {"id": chat_id, "user_id": user_id})
    return cast(TtlRow | None, await cur.fetchone())


def _defaults(default_minutes: float | None, default_strategy: Strategy) -> dict[str, object]:
    return {"default_minutes": default_minutes, "default_strategy": default_strategy}


async def expired(
    conn: Conn, *, limit: int, default_minutes: float | None, default_strategy: Strategy
) -> list[Expired]:
    """Up to ``limit`` idle threads whose time is up, the longest expired first."""
    params = {"limit": limit, **_defaults(default_minutes, default_strategy)}
    cur = await conn.execute(EXPIRED, params)
    return cast(list[Expired], await cur.fetchall())


async def lock_expired(
    conn: Conn, chat_id: UUID, *, default_minutes: float | None, default_strategy: Strategy
) -> Strategy | None:
    """In a transaction: lock the thread if it is still expired and idle; its strategy."""
    params = {"id": chat_id, **_defaults(default_minutes, default_strategy)}
    cur = await conn.execute(LOCK_EXPIRED, params)
    row = await cur.fetchone()
    if row is None or await _active(conn, chat_id):
        return None
    return cast(Strategy, row["strategy"])


async def lock_idle_owned(conn: Conn, user_id: UUID, chat_id: UUID) -> bool:
    """In a transaction: lock the user's thread if it has no active run."""
    cur = await conn.execute(LOCK_OWNED, {"id": chat_id, "user_id": user_id})
    return await cur.fetchone() is not None and not await _active(conn, chat_id)


async def _active(conn: Conn, chat_id: UUID) -> bool:
    # Under the row lock no run can start (its insert waits for it), and this statement sees
    # every run that did.
    cur = await conn.execute(ACTIVE, (chat_id,))
    row = await cur.fetchone()
    return bool(row and row["active"])


async def delete_chat(conn: Conn, chat_id: UUID) -> None:
    """The chat with its runs, shares, files, crons (their foreign keys cascade)."""
    await conn.execute(DELETE_CHAT, (chat_id,))


async def mark_pruned(conn: Conn, chat_id: UUID) -> None:
    await conn.execute(MARK_PRUNED, (chat_id,))


async def owned_ids(conn: Conn, user_id: UUID, ids: list[UUID]) -> set[UUID]:
    cur = await conn.execute(SELECT_OWNED_IDS, {"user_id": user_id, "ids": ids})
    return {row["id"] for row in await cur.fetchall()}
