"""Chats: one conversation between a user and an agent.

A chat's id is also its LangGraph thread id. The summary columns (``last_message_at``,
``message_count``) are derived from the thread and refreshed after each run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from psycopg.types.json import Jsonb

from storage.db import Conn
from storage.rows import ChatRow
from storage.types import ChatStatus, ThreadStatus

CHAT_COLUMNS = """
    id, user_id, agent_id, title, status, created_at, updated_at, last_message_at, message_count,
    metadata, thread_status, forked_from
"""

INSERT_CHAT = f"""
INSERT INTO chats (user_id, agent_id, title) VALUES (%s, %s, %s) RETURNING {CHAT_COLUMNS}
"""
# Every read is scoped by user_id: another user's chat simply does not exist for the caller.
SELECT_OWNED = f"SELECT {CHAT_COLUMNS} FROM chats WHERE id = %s AND user_id = %s"
DELETE_OWNED = "DELETE FROM chats WHERE id = %s AND user_id = %s"
SELECT_IDS_OF_USER = "SELECT id FROM chats WHERE user_id = %s ORDER BY created_at, id"
LIST_FILTERED = f"""
SELECT {CHAT_COLUMNS} FROM chats
WHERE user_id = %(user_id)s
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(agent_id)s::uuid IS NULL OR agent_id = %(agent_id)s::uuid)
  AND (%(q)s::text IS NULL OR strpos(lower(title), lower(%(q)s::text)) > 0)
ORDER BY updated_at DESC, id DESC
LIMIT %(limit)s OFFSET %(offset)s
"""
COUNT_FILTERED = """
SELECT count(*) AS n FROM chats
WHERE user_id = %(user_id)s
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(agent_id)s::uuid IS NULL OR agent_id = %(agent_id)s::uuid)
  AND (%(q)s::text IS NULL OR strpos(lower(title), lower(%(q)s::text)) > 0)
"""

UPDATABLE = ("title", "status")


# A chat of a user who exists with an agent that is live, checked and inserted in one statement.
INSERT_WITH_LIVE_AGENT = f"""
INSERT INTO chats (user_id, agent_id, title, ttl_minutes, ttl_strategy)
SELECT u.id, a.id, %(title)s, %(ttl_minutes)s, %(ttl_strategy)s
FROM users u JOIN agents a ON a.id = %(agent_id)s AND a.deleted_at IS NULL
WHERE u.id = %(user_id)s
RETURNING {CHAT_COLUMNS}
"""


async def insert_with_live_agent(
    conn: Conn,
    *,
    user_id: UUID,
    agent_id: UUID,
    title: str | None,
    ttl_minutes: float | None = None,
    ttl_strategy: str | None = None,
) -> ChatRow | None:
    """The new chat (with a ttl of its own, if given), or ``None`` when the user is gone or the
    agent is missing or retired."""
    params = {
        "user_id": user_id, "agent_id": agent_id, "title": title,
        "ttl_minutes": ttl_minutes, "ttl_strategy": ttl_strategy,
    }  # fmt: skip
    cur = await conn.execute(INSERT_WITH_LIVE_AGENT, params)
    return cast(ChatRow | None, await cur.fetchone())


async def insert(conn: Conn, *, user_id: UUID, agent_id: UUID, title: str | None) -> ChatRow:
    cur = await conn.execute(INSERT_CHAT, (user_id, agent_id, title))
    row = await cur.fetchone()
    assert row is not None
    return cast(ChatRow, row)


# A copy of a chat (a fork, or an Agent Protocol thread copy): same owner, agent, title and
# metadata; its thread's checkpoints are copied separately (``Checkpointer.acopy_thread``).
INSERT_COPY = f"""
INSERT INTO chats (user_id, agent_id, title, metadata, forked_from)
SELECT user_id, agent_id, title, metadata, %(forked_from)s FROM chats
WHERE id = %(id)s AND user_id = %(user_id)s
RETURNING {CHAT_COLUMNS}
"""


async def insert_copy(
    conn: Conn, chat_id: UUID, user_id: UUID, *, forked_from: dict[str, Any] | None
) -> ChatRow | None:
    """A new chat like the user's chat ``chat_id``; ``None`` if that is not theirs."""
    params = {
        "id": chat_id,
        "user_id": user_id,
        "forked_from": Jsonb(forked_from) if forked_from is not None else None,
    }
    cur = await conn.execute(INSERT_COPY, params)
    return cast(ChatRow | None, await cur.fetchone())


# A thread created by a run with ``if_not_exists: "create"``: its id is the client's.
INSERT_WITH_ID = f"""
INSERT INTO chats (id, user_id, agent_id) VALUES (%(id)s, %(user_id)s, %(agent_id)s)
ON CONFLICT (id) DO NOTHING RETURNING {CHAT_COLUMNS}
"""


async def insert_with_id(
    conn: Conn, *, chat_id: UUID, user_id: UUID, agent_id: UUID
) -> ChatRow | None:
    """Create the chat ``chat_id``; ``None`` if that id is taken (by anyone)."""
    cur = await conn.execute(
        INSERT_WITH_ID, {"id": chat_id, "user_id": user_id, "agent_id": agent_id}
    )
    return cast(ChatRow | None, await cur.fetchone())


async def get_owned(conn: Conn, chat_id: UUID, user_id: UUID) -> ChatRow | None:
    cur = await conn.execute(SELECT_OWNED, (chat_id, user_id))
    return cast(ChatRow | None, await cur.fetchone())


async def list_page(
    conn: Conn,
    *,
    user_id: UUID,
    status: str | None,
    agent_id: UUID | None,
    limit: int,
    offset: int,
    q: str | None = None,
) -> tuple[list[ChatRow], int]:
    """The user's chats, most recently updated first, and how many match in total; with
    ``q``, those whose title contains it (case-insensitively; a plain substring, no pattern)."""
    params = {
        "user_id": user_id,
        "status": status,
        "agent_id": agent_id,
        "q": q,
        "limit": limit,
        "offset": offset,
    }
    cur = await conn.execute(LIST_FILTERED, params)
    rows = cast(list[ChatRow], await cur.fetchall())
    cur = await conn.execute(COUNT_FILTERED, params)
    total = await cur.fetchone()
    assert total is not None
    return rows, total["n"]


async def update_owned(
    conn: Conn, chat_id: UUID, user_id: UUID, fields: dict[str, Any]
) -> ChatRow | None:
    unknown = set(fields) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    assignments = "".join(f"{column} = %({column})s, " for column in fields)
    params = dict(fields, id=chat_id, user_id=user_id)
    cur = await conn.execute(
        f"UPDATE chats SET {assignments}updated_at = now() "
        f"WHERE id = %(id)s AND user_id = %(user_id)s RETURNING {CHAT_COLUMNS}",
        params,
    )
    return cast(ChatRow | None, await cur.fetchone())


async def delete_owned(conn: Conn, chat_id: UUID, user_id: UUID) -> bool:
    cur = await conn.execute(DELETE_OWNED, (chat_id, user_id))
    return cur.rowcount == 1


async def ids_of_user(conn: Conn, user_id: UUID) -> list[UUID]:
    """Every chat of the user's, oldest first."""
    cur = await conn.execute(SELECT_IDS_OF_USER, (user_id,))
    return [row["id"] for row in await cur.fetchall()]


# After a run: the summary columns are derived from the thread, so they are simply overwritten.
UPDATE_SUMMARY = f"""
UPDATE chats SET message_count = %(message_count)s, last_message_at = now(), updated_at = now(),
                 title = coalesce(title, %(title)s), thread_status = %(thread_status)s
WHERE id = %(id)s RETURNING {CHAT_COLUMNS}
"""
# Whether a new run must first answer tool calls left open: the thread waits on an interrupt,
# or the chat's last run was stopped (or failed) part-way.
# (The run asking is not ended yet, so "the last ended run" is never itself.)
NEEDS_CLOSING = """
(SELECT c.thread_status <> 'idle'
        OR coalesce((SELECT r.status IN ('cancelled', 'interrupted', 'error') FROM runs r
                     WHERE r.chat_id = c.id AND r.ended_at IS NOT NULL
                     ORDER BY r.ended_at DESC LIMIT 1), false)
 FROM chats c WHERE c.id = %(chat_id)s)
"""
SELECT_NEEDS_CLOSING = f"SELECT {NEEDS_CLOSING} AS needs"


async def update_summary(
    conn: Conn,
    chat_id: UUID,
    *,
    message_count: int,
    title: str | None,
    thread_status: str = "idle",
) -> ChatRow | None:
    """Refresh the derived columns; ``title`` is only used when the chat has none yet."""
    cur = await conn.execute(
        UPDATE_SUMMARY,
        {
            "id": chat_id,
            "message_count": message_count,
            "title": title,
            "thread_status": thread_status,
        },
    )
    return cast(ChatRow | None, await cur.fetchone())


async def needs_closing(conn: Conn, chat_id: UUID | str) -> bool:
    cur = await conn.execute(SELECT_NEEDS_CLOSING, {"chat_id": chat_id})
    row = await cur.fetchone()
    return bool(row and row["needs"])


# The user's chats oldest first, the page after (created_at, id) = (%(after_created)s,
# %(after_id)s): keyset paging, so an export of many chats never holds more than one page, and
# chats created while it runs do not shift the pages.
EXPORT_PAGE = f"""
SELECT {CHAT_COLUMNS} FROM chats
WHERE user_id = %(user_id)s AND (created_at, id) > (%(after_created)s, %(after_id)s)
ORDER BY created_at, id
LIMIT %(limit)s
"""
# Before every chat: where the first page starts.
EXPORT_START = (datetime(1, 1, 1, tzinfo=UTC), UUID(int=0))


async def export_page(
    conn: Conn, user_id: UUID, after: tuple[datetime, UUID], limit: int
) -> list[ChatRow]:
    """Up to ``limit`` of the user's chats after ``after`` (``EXPORT_START``, or the
    ``(created_at, id)`` of the last chat of the previous page), oldest first."""
    params = {
        "user_id": user_id, "after_created": after[0], "after_id": after[1], "limit": limit,
    }  # fmt: skip
    cur = await conn.execute(EXPORT_PAGE, params)
    return cast(list[ChatRow], await cur.fetchall())


# An imported chat, with its summary columns as its imported thread has them, in one statement
# that also checks the user exists and the agent (when there is one) is live.
INSERT_IMPORTED = f"""
INSERT INTO chats (id, user_id, agent_id, title, status, message_count, last_message_at,
                   thread_status)
SELECT %(id)s, u.id, %(agent_id)s, %(title)s, %(status)s, %(message_count)s,
       %(last_message_at)s, %(thread_status)s
FROM users u
WHERE u.id = %(user_id)s
  AND (%(agent_id)s::uuid IS NULL
       OR EXISTS (SELECT 1 FROM agents a WHERE a.id = %(agent_id)s AND a.deleted_at IS NULL))
RETURNING {CHAT_COLUMNS}
"""


async def insert_imported(
    conn: Conn,
    *,
    chat_id: UUID,
    user_id: UUID,
    agent_id: UUID | None,
    title: str | None,
    status: ChatStatus,
    message_count: int,
    last_message_at: datetime | None,
    thread_status: ThreadStatus,
) -> ChatRow | None:
    """The imported chat; ``None`` when the user is gone or the agent was retired."""
    params = {
        "id": chat_id, "user_id": user_id, "agent_id": agent_id, "title": title,
        "status": status, "message_count": message_count, "last_message_at": last_message_at,
        "thread_status": thread_status,
    }  # fmt: skip
    cur = await conn.execute(INSERT_IMPORTED, params)
    return cast(ChatRow | None, await cur.fetchone())
