"""Chat retention and orphaned checkpoints.

Retention: a chat is idle since its ``updated_at``, which moves when it is created, renamed,
archived or given a ttl, and when each run on it ends (every message is a run); reading it does
not count, and a chat with a pending or running run is never idle. Idle chats older than the
server's retention go with their runs, shares, files and crons (foreign keys cascade); the
caller deletes their checkpoints in the same transaction.

Orphans: checkpoint rows (``checkpoints``, ``checkpoint_writes``, ``checkpoint_blobs``, keyed by
``thread_id`` = the chat's id as text) whose chat no longer exists. ``DELETE /chats/{id}``
deletes the chat row and then its thread in a second step, so a process that dies between the
two, or a row deleted by hand, leaves them behind; nothing reads them again.
"""

from __future__ import annotations

from typing import cast
from uuid import UUID

from storage.db import Conn

# A key of its own in the bigint advisory-lock space (the migration lock and the ttl sweep
# have theirs): one process deletes idle chats at a time. A transaction lock, so it cannot
# outlive the batch on a pooled connection.
RETENTION_LOCK_KEY = 0x5357_5254_4E00_0001
TRY_RETENTION_LOCK = "SELECT pg_try_advisory_xact_lock(%s) AS locked"

_ACTIVE = """EXISTS (SELECT 1 FROM runs r WHERE r.chat_id = c.id
                    AND r.status IN ('pending', 'running'))"""
_IDLE = "c.updated_at < now() - %(days)s::float8 * interval '1 day'"
# Idle chats past the retention, longest idle first, locked: a run's insert (its foreign key)
# waits for the lock, so none starts on a chat being deleted. SKIP LOCKED: a chat someone is
# deleting or renaming right now is left for the next round.
LOCK_IDLE = f"""
SELECT c.id FROM chats c
WHERE {_IDLE} AND NOT {_ACTIVE}
ORDER BY c.updated_at
LIMIT %(limit)s
FOR UPDATE OF c SKIP LOCKED
"""
# Asked again once they are locked: a run or an update that committed while LOCK_IDLE ran is
# seen by this statement.
STILL_IDLE = f"""
SELECT c.id FROM chats c WHERE c.id = ANY(%(ids)s::uuid[]) AND {_IDLE} AND NOT {_ACTIVE}
"""
DELETE_CHATS = "DELETE FROM chats WHERE id = ANY(%s::uuid[]) RETURNING id"

# The checkpointer's tables, in the order a thread's rows are deleted (the saver's own order).
CHECKPOINT_TABLES = ("checkpoint_writes", "checkpoint_blobs", "checkpoints")
# Threads that have rows in any checkpoint table but no chat.
ORPHAN_THREADS = """
SELECT t.thread_id FROM (
    SELECT DISTINCT thread_id FROM checkpoints
    UNION SELECT DISTINCT thread_id FROM checkpoint_writes
    UNION SELECT DISTINCT thread_id FROM checkpoint_blobs
) t
WHERE NOT EXISTS (SELECT 1 FROM chats c WHERE c.id::text = t.thread_id)
ORDER BY t.thread_id
"""
# Per table; the chat is asked again in the statement itself, so a thread whose chat exists by
# the time it runs keeps its rows.
_NO_CHAT = "NOT EXISTS (SELECT 1 FROM chats c WHERE c.id::text = t.thread_id)"
COUNT_ORPHAN_ROWS = {
    table: f"SELECT count(*) AS n FROM {table} t WHERE t.thread_id = ANY(%s) AND {_NO_CHAT}"
    for table in CHECKPOINT_TABLES
}
DELETE_ORPHAN_ROWS = {
    table: f"DELETE FROM {table} t WHERE t.thread_id = ANY(%s) AND {_NO_CHAT}"
    for table in CHECKPOINT_TABLES
}


async def try_retention_lock(conn: Conn) -> bool:
    """In a transaction: take the retention sweep's lock if no other process holds it (it is
    released when the transaction ends)."""
    cur = await conn.execute(TRY_RETENTION_LOCK, (RETENTION_LOCK_KEY,))
    row = await cur.fetchone()
    return bool(row and row["locked"])


async def lock_idle(conn: Conn, *, days: float, limit: int) -> list[UUID]:
    """In a transaction: up to ``limit`` chats idle for more than ``days``, locked, that are
    still idle once locked."""
    cur = await conn.execute(LOCK_IDLE, {"days": days, "limit": limit})
    ids = [row["id"] for row in await cur.fetchall()]
    if not ids:
        return []
    cur = await conn.execute(STILL_IDLE, {"days": days, "ids": ids})
    still = {row["id"] for row in await cur.fetchall()}
    return [chat_id for chat_id in ids if chat_id in still]


async def delete_chats(conn: Conn, ids: list[UUID]) -> list[UUID]:
    """The chats with everything whose foreign key cascades (runs, shares, files, crons)."""
    cur = await conn.execute(DELETE_CHATS, (ids,))
    return [row["id"] for row in await cur.fetchall()]


async def orphan_threads(conn: Conn) -> list[str]:
    """The thread ids with checkpoint rows and no chat."""
    cur = await conn.execute(ORPHAN_THREADS)
    return [cast(str, row["thread_id"]) for row in await cur.fetchall()]


async def count_orphan_rows(conn: Conn, thread_ids: list[str]) -> dict[str, int]:
    """Rows per checkpoint table of these threads, while they still have no chat."""
    counts = {}
    for table, statement in COUNT_ORPHAN_ROWS.items():
        cur = await conn.execute(statement, (thread_ids,))
        row = await cur.fetchone()
        counts[table] = int(row["n"]) if row else 0
    return counts


async def delete_orphan_rows(conn: Conn, thread_ids: list[str]) -> dict[str, int]:
    """In a transaction: delete these threads' checkpoint rows while they still have no chat;
    how many went from each table."""
    counts = {}
    for table, statement in DELETE_ORPHAN_ROWS.items():
        cur = await conn.execute(statement, (thread_ids,))
        counts[table] = cur.rowcount
    return counts
