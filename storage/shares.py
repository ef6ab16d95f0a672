"""Chats shared read-only: with other users (``chat_shares``) and by public link
(``chat_share_links``, the token stored hashed).

Writes are scoped by the owner in the statement itself, as every chat write is; reads of a
chat for someone who may only read it go through ``get_readable``.
"""

from __future__ import annotations

from typing import cast
from uuid import UUID

from psycopg import errors as pg_errors

from storage.chats import CHAT_COLUMNS
from storage.db import Conn
from storage.rows import OpenedLinkRow, ReadableChatRow, SharedChatRow, ShareLinkRow, ShareRow
from storage.types import ShareRole

_CHAT = ", ".join("c." + column.strip() for column in CHAT_COLUMNS.split(",") if column.strip())

# The chat for its owner or for a user it is shared with, in one statement: a read by the
# owner (every page of messages, history, state) stays one round trip of primary-key
# lookups, as ``chats.SELECT_OWNED`` was. A viewer's access is the share's role.
SELECT_READABLE = f"""
SELECT {_CHAT},
       CASE WHEN c.user_id = %(user_id)s THEN 'owner' ELSE s.role END AS access,
       o.name AS owner_name
FROM chats c
JOIN users o ON o.id = c.user_id
LEFT JOIN chat_shares s ON s.chat_id = c.id AND s.user_id = %(user_id)s
WHERE c.id = %(chat_id)s AND (c.user_id = %(user_id)s OR s.user_id IS NOT NULL)
"""

# Only into a chat of the owner's. A share that exists keeps its created_at and takes the
# role asked for; ``xmax = 0`` holds only for a row this statement inserted (an updated row
# carries the updating transaction's id), so the caller learns which happened without a
# second statement or a race between two of them.
UPSERT_SHARE = """
INSERT INTO chat_shares (chat_id, user_id, role)
SELECT c.id, %(user_id)s, %(role)s FROM chats c
WHERE c.id = %(chat_id)s AND c.user_id = %(owner_id)s
ON CONFLICT (chat_id, user_id) DO UPDATE SET role = excluded.role
RETURNING user_id, (SELECT email FROM users WHERE id = %(user_id)s) AS email, role, created_at,
          (xmax = 0) AS created
"""
SELECT_SHARES = """
SELECT s.user_id, u.email, s.role, s.created_at
FROM chat_shares s JOIN users u ON u.id = s.user_id
WHERE s.chat_id = %(chat_id)s
ORDER BY s.created_at, s.user_id
LIMIT %(limit)s OFFSET %(offset)s
"""
COUNT_SHARES = "SELECT count(*) AS n FROM chat_shares WHERE chat_id = %s"
DELETE_SHARE = "DELETE FROM chat_shares WHERE chat_id = %s AND user_id = %s"
SELECT_SHARED_WITH = f"""
SELECT {_CHAT}, o.name AS owner_name, s.role, s.created_at AS shared_at
FROM chat_shares s
JOIN chats c ON c.id = s.chat_id
JOIN users o ON o.id = c.user_id
WHERE s.user_id = %(user_id)s
ORDER BY c.updated_at DESC, c.id DESC
LIMIT %(limit)s OFFSET %(offset)s
"""
COUNT_SHARED_WITH = "SELECT count(*) AS n FROM chat_shares WHERE user_id = %s"

LINK_COLUMNS = "chat_id, checkpoint_id, created_at"
# One link per chat: a new one replaces the token and the snapshot, so the old token stops
# working in the same statement.
UPSERT_LINK = f"""
INSERT INTO chat_share_links (chat_id, token_hash, checkpoint_id)
SELECT c.id, %(token_hash)s, %(checkpoint_id)s FROM chats c
WHERE c.id = %(chat_id)s AND c.user_id = %(owner_id)s
ON CONFLICT (chat_id) DO UPDATE
SET token_hash = excluded.token_hash, checkpoint_id = excluded.checkpoint_id, created_at = now()
RETURNING {LINK_COLUMNS}
"""
SELECT_LINK = f"SELECT {LINK_COLUMNS} FROM chat_share_links WHERE chat_id = %s"
DELETE_LINK = "DELETE FROM chat_share_links WHERE chat_id = %s"
SELECT_LINK_BY_HASH = """
SELECT l.chat_id, l.checkpoint_id, l.created_at, c.title, a.name AS agent_name
FROM chat_share_links l
JOIN chats c ON c.id = l.chat_id
LEFT JOIN agents a ON a.id = c.agent_id
WHERE l.token_hash = %s
"""


async def get_readable(conn: Conn, chat_id: UUID, user_id: UUID) -> ReadableChatRow | None:
    """The chat if the user owns it or it is shared with them (``access`` says which)."""
    cur = await conn.execute(SELECT_READABLE, {"chat_id": chat_id, "user_id": user_id})
    return cast(ReadableChatRow | None, await cur.fetchone())


async def upsert(
    conn: Conn, *, chat_id: UUID, owner_id: UUID, user_id: UUID, role: ShareRole
) -> ShareRow | None:
    """Share the owner's chat with ``user_id`` (``created``: it was not shared before);
    ``None`` when the chat is not the owner's or either side is gone."""
    params = {"chat_id": chat_id, "owner_id": owner_id, "user_id": user_id, "role": role}
    try:
        cur = await conn.execute(UPSERT_SHARE, params)
    except pg_errors.ForeignKeyViolation:
        # The chat or the account was deleted after the caller looked it up.
        return None
    return cast(ShareRow | None, await cur.fetchone())


async def list_for_chat(
    conn: Conn, chat_id: UUID, *, limit: int, offset: int
) -> tuple[list[ShareRow], int]:
    """Whom the chat is shared with, oldest share first, and with how many in all."""
    cur = await conn.execute(SELECT_SHARES, {"chat_id": chat_id, "limit": limit, "offset": offset})
    rows = cast(list[ShareRow], await cur.fetchall())
    cur = await conn.execute(COUNT_SHARES, (chat_id,))
    total = await cur.fetchone()
    assert total is not None
    return rows, total["n"]


async def delete(conn: Conn, chat_id: UUID, user_id: UUID) -> bool:
    cur = await conn.execute(DELETE_SHARE, (chat_id, user_id))
    return cur.rowcount == 1


async def shared_with(
    conn: Conn, user_id: UUID, *, limit: int, offset: int
) -> tuple[list[SharedChatRow], int]:
    """The chats shared with the user, most recently updated first, and how many there are."""
    params = {"user_id": user_id, "limit": limit, "offset": offset}
    cur = await conn.execute(SELECT_SHARED_WITH, params)
    rows = cast(list[SharedChatRow], await cur.fetchall())
    cur = await conn.execute(COUNT_SHARED_WITH, (user_id,))
    total = await cur.fetchone()
    assert total is not None
    return rows, total["n"]


async def upsert_link(
    conn: Conn, *, chat_id: UUID, owner_id: UUID, token_hash: bytes, checkpoint_id: str | None
) -> ShareLinkRow | None:
    """The owner's chat's link, new or replacing the one it had; ``None`` when the chat is not
    the owner's (or was deleted meanwhile)."""
    params = {
        "chat_id": chat_id,
        "owner_id": owner_id,
        "token_hash": token_hash,
        "checkpoint_id": checkpoint_id,
    }
    try:
        cur = await conn.execute(UPSERT_LINK, params)
    except pg_errors.ForeignKeyViolation:
        return None
    return cast(ShareLinkRow | None, await cur.fetchone())


async def get_link(conn: Conn, chat_id: UUID) -> ShareLinkRow | None:
    cur = await conn.execute(SELECT_LINK, (chat_id,))
    return cast(ShareLinkRow | None, await cur.fetchone())


async def delete_link(conn: Conn, chat_id: UUID) -> bool:
    cur = await conn.execute(DELETE_LINK, (chat_id,))
    return cur.rowcount == 1


async def open_link(conn: Conn, token_hash: bytes) -> OpenedLinkRow | None:
    """The link with that token hash, with its chat's title and agent's name."""
    cur = await conn.execute(SELECT_LINK_BY_HASH, (token_hash,))
    return cast(OpenedLinkRow | None, await cur.fetchone())
