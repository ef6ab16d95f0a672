"""Feedback on agent messages: one vote (and comment) per message of a chat."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from storage.db import Conn
from storage.rows import ImportedFeedback

FEEDBACK_COLUMNS = "message_id, score, comment, created_at, updated_at"

UPSERT = f"""
INSERT INTO message_feedback
    (chat_id, message_id, user_id, agent_id, agent_version, score, comment)
VALUES (%(chat_id)s, %(message_id)s, %(user_id)s, %(agent_id)s, %(agent_version)s, %(score)s,
        %(comment)s)
ON CONFLICT (chat_id, message_id) DO UPDATE
SET score = excluded.score, comment = excluded.comment, updated_at = now()
RETURNING {FEEDBACK_COLUMNS}
"""
# Votes carried over by an import, with the times they were given on the server they left.
INSERT_IMPORTED = """
INSERT INTO message_feedback
    (chat_id, message_id, user_id, agent_id, agent_version, score, comment, created_at,
     updated_at)
VALUES (%(chat_id)s, %(message_id)s, %(user_id)s, %(agent_id)s, %(agent_version)s, %(score)s,
        %(comment)s, %(created_at)s, %(updated_at)s)
"""
DELETE = "DELETE FROM message_feedback WHERE chat_id = %s AND message_id = %s"
SELECT_FOR = f"""
SELECT {FEEDBACK_COLUMNS} FROM message_feedback WHERE chat_id = %s AND message_id = ANY(%s)
"""
SUMMARY = """
SELECT agent_version AS version,
       count(*) FILTER (WHERE score = 1) AS up,
       count(*) FILTER (WHERE score = -1) AS down,
       count(*) FILTER (WHERE score = 0) AS neutral
FROM message_feedback WHERE agent_id = %s
GROUP BY agent_version ORDER BY agent_version DESC NULLS LAST
"""


async def put(
    conn: Conn,
    *,
    chat_id: UUID,
    message_id: str,
    user_id: UUID,
    agent_id: UUID | None,
    agent_version: int | None,
    score: int,
    comment: str | None,
) -> dict[str, Any]:
    params = {
        "chat_id": chat_id, "message_id": message_id, "user_id": user_id,
        "agent_id": agent_id, "agent_version": agent_version, "score": score,
        "comment": comment,
    }  # fmt: skip
    cur = await conn.execute(UPSERT, params)
    row = await cur.fetchone()
    assert row is not None
    return row


async def insert_imported(conn: Conn, rows: list[ImportedFeedback]) -> None:
    """Votes of imported chats, as given (one statement per vote, in the caller's transaction)."""
    if rows:
        async with conn.cursor() as cur:
            await cur.executemany(INSERT_IMPORTED, rows)


async def delete(conn: Conn, chat_id: UUID, message_id: str) -> bool:
    cur = await conn.execute(DELETE, (chat_id, message_id))
    return cur.rowcount == 1


async def for_messages(conn: Conn, chat_id: UUID, message_ids: list[str]) -> dict[str, Any]:
    """The feedback of those messages of the chat, by message id (absent: none given)."""
    if not message_ids:
        return {}
    cur = await conn.execute(SELECT_FOR, (chat_id, message_ids))
    return {row["message_id"]: row for row in await cur.fetchall()}


async def summary(conn: Conn, agent_id: UUID) -> list[dict[str, Any]]:
    cur = await conn.execute(SUMMARY, (agent_id,))
    return await cur.fetchall()
