"""Threads of the Agent Protocol: chats seen the way the official server shows threads."""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

from psycopg.types.json import Jsonb

from storage.chats import CHAT_COLUMNS
from storage.db import Conn
from storage.rows import ChatRow, ThreadRow

# Columns named, not c.*: a prepared statement must not change its result columns when a
# migration adds one to chats while this process runs.
_CHAT = ", ".join("c." + column.strip() for column in CHAT_COLUMNS.split(","))
# A thread is busy while it has an active run; otherwise its status is the one its last run
# left (idle, interrupted, error).
_THREADS = f"""
SELECT * FROM (
    SELECT {_CHAT}, a.slug AS graph_id,
           CASE WHEN EXISTS (SELECT 1 FROM runs r WHERE r.chat_id = c.id
                             AND r.status IN ('pending', 'running'))
                THEN 'busy' ELSE c.thread_status END AS protocol_status
    FROM chats c LEFT JOIN agents a ON a.id = c.agent_id
    WHERE c.user_id = %(user_id)s
) t
WHERE t.metadata @> %(metadata)s
  AND (%(ids)s::uuid[] IS NULL OR t.id = ANY(%(ids)s::uuid[]))
  AND (%(status)s::text IS NULL OR t.protocol_status = %(status)s::text)
"""
SORT_COLUMNS = {
    "thread_id": "id",
    "status": "protocol_status",
    "created_at": "created_at",
    "updated_at": "updated_at",
}
SELECT_ONE = _THREADS.replace(
    "WHERE c.user_id = %(user_id)s", "WHERE c.user_id = %(user_id)s AND c.id = %(id)s"
)
# Only for a user who exists: the insert is also the request's authentication query.
INSERT_THREAD = f"""
INSERT INTO chats (id, user_id, agent_id, metadata, ttl_minutes, ttl_strategy)
SELECT coalesce(%(id)s, gen_random_uuid()), u.id, %(agent_id)s, %(metadata)s,
       %(ttl_minutes)s, %(ttl_strategy)s
FROM users u WHERE u.id = %(user_id)s
ON CONFLICT (id) DO NOTHING RETURNING {CHAT_COLUMNS}
"""
MERGE_METADATA = f"""
UPDATE chats SET metadata = metadata || %(metadata)s, updated_at = now()
WHERE id = %(id)s AND user_id = %(user_id)s RETURNING {CHAT_COLUMNS}
"""


def _filters(user_id: UUID, metadata: dict | None, ids: list | None, status: str | None) -> dict:
    return {"user_id": user_id, "metadata": Jsonb(metadata or {}), "ids": ids, "status": status}


async def get(conn: Conn, user_id: UUID, thread_id: UUID) -> ThreadRow | None:
    params = _filters(user_id, None, None, None) | {"id": thread_id}
    cur = await conn.execute(SELECT_ONE, params)
    return cast(ThreadRow | None, await cur.fetchone())


async def search(
    conn: Conn,
    user_id: UUID,
    *,
    metadata: dict | None,
    ids: list | None,
    status: str | None,
    sort_by: str,
    descending: bool,
    limit: int,
    offset: int,
) -> list[ThreadRow]:
    order = f"{SORT_COLUMNS[sort_by]} {'DESC' if descending else 'ASC'}, id"
    query = _THREADS + f" ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s"
    params = _filters(user_id, metadata, ids, status) | {"limit": limit, "offset": offset}
    cur = await conn.execute(query, params)
    return cast(list[ThreadRow], await cur.fetchall())


async def count(
    conn: Conn, user_id: UUID, *, metadata: dict | None, ids: list | None, status: str | None
) -> int:
    cur = await conn.execute(
        f"SELECT count(*) AS n FROM ({_THREADS}) counted", _filters(user_id, metadata, ids, status)
    )
    row = await cur.fetchone()
    assert row is not None
    return row["n"]


async def insert(
    conn: Conn,
    *,
    user_id: UUID,
    thread_id: UUID | None,
    agent_id: UUID | None,
    metadata: dict[str, Any],
    ttl_minutes: float | None = None,
    ttl_strategy: str | None = None,
) -> ChatRow | None:
    """A new thread (with a ttl of its own, if given); ``None`` when ``thread_id`` is taken (by
    anyone) or the user is gone."""
    params = {
        "id": thread_id, "user_id": user_id, "agent_id": agent_id, "metadata": Jsonb(metadata),
        "ttl_minutes": ttl_minutes, "ttl_strategy": ttl_strategy,
    }  # fmt: skip
    cur = await conn.execute(INSERT_THREAD, params)
    return cast(ChatRow | None, await cur.fetchone())


async def merge_metadata(
    conn: Conn, user_id: UUID, thread_id: UUID, metadata: dict[str, Any]
) -> ChatRow | None:
    cur = await conn.execute(
        MERGE_METADATA, {"id": thread_id, "user_id": user_id, "metadata": Jsonb(metadata)}
    )
    return cast(ChatRow | None, await cur.fetchone())
