"""Chats belong to one user and talk to one agent."""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

from api.errors import INVALID_TOKEN, Conflict, NotFound, Unauthorized
from api.schemas.chats import ChatTtl
from api.state import AppState
from storage import agents as agents_store
from storage import chats as chats_store
from storage import shares as shares_store
from storage import users as users_store
from storage.db import Conn
from storage.rows import ChatRow, ReadableChatRow
from storage.types import ChatStatus


def chat_out(row: ChatRow) -> dict[str, Any]:
    keys: Final = (
        "id", "agent_id", "title", "status", "created_at", "updated_at", "last_message_at",
        "message_count", "forked_from",
    )  # fmt: skip
    return {k: row[k] for k in keys}


async def create(
    conn: Conn, user_id: UUID, agent_id: UUID, title: str | None, ttl: ChatTtl | None = None
) -> ChatRow:
    chat = await chats_store.insert_with_live_agent(
        conn,
        user_id=user_id,
        agent_id=agent_id,
        title=title,
        ttl_minutes=ttl.ttl if ttl else None,
        ttl_strategy=ttl.strategy if ttl else None,
    )
    if chat is not None:
        return chat
    if await users_store.get(conn, user_id) is None:
        raise Unauthorized(INVALID_TOKEN)
    agent = await agents_store.get(conn, agent_id, include_deleted=True)
    if agent is None:
        raise NotFound("Agent not found")
    raise Conflict("This agent has been retired; pick another one")


async def get_owned(
    conn: Conn, chat_id: UUID, user_id: UUID, *, not_found: str = "Chat not found"
) -> ChatRow:
    """The chat if ``user_id`` owns it; 404 otherwise, whether or not it exists."""
    row = await chats_store.get_owned(conn, chat_id, user_id)
    if row is None:
        raise NotFound(not_found)
    return row


async def get_readable(
    conn: Conn, chat_id: UUID, user_id: UUID, *, not_found: str = "Chat not found"
) -> ReadableChatRow:
    """The chat if ``user_id`` owns it or it is shared with them; 404 otherwise, whether or not
    it exists. For reads only (the chat, its messages, history, state, export): every write and
    every run keeps ``get_owned``, so a viewer is a stranger there."""
    row = await shares_store.get_readable(conn, chat_id, user_id)
    if row is None:
        raise NotFound(not_found)
    return row


def chat_view(row: ReadableChatRow) -> dict[str, Any]:
    """A chat as its reader sees it: whose it is, and whether the reader owns it or views it.
    The owner is named, nothing more (no email)."""
    return {
        **chat_out(row),
        "access": row["access"],
        "owner": {"id": row["user_id"], "name": row["owner_name"]},
    }


async def delete(
    state: AppState, user_id: UUID, chat_id: UUID, *, not_found: str = "Chat not found"
) -> None:
    """Delete a chat (a thread, to the Agent Protocol): its active runs are stopped first, so
    nothing writes to the thread afterwards; then the chat, its runs and every checkpoint of
    its thread go. The one way to delete a chat, for both APIs."""
    async with state.pool.connection() as conn:
        if await chats_store.get_owned(conn, chat_id, user_id) is None:
            raise NotFound(not_found)
    await state.runs.stop_chat(chat_id, status="cancelled")
    async with state.pool.connection() as conn:
        if not await chats_store.delete_owned(conn, chat_id, user_id):
            raise NotFound(not_found)
    await state.runs.threads.delete(chat_id)


async def copy(
    state: AppState,
    user_id: UUID,
    chat_id: UUID,
    *,
    upto: str | None = None,
    history: bool = True,
    forked_from: dict[str, Any] | None = None,
    not_found: str = "Chat not found",
) -> ChatRow:
    """A new chat of the user's like their chat ``chat_id`` (agent, title, metadata) holding its
    thread's history: all of it, or the branch that ends at checkpoint ``upto``; none without
    ``history``. The one way a chat is copied, for forks and the Agent Protocol's copy."""
    async with state.pool.connection() as conn:
        row = await chats_store.insert_copy(conn, chat_id, user_id, forked_from=forked_from)
    if row is None:
        raise NotFound(not_found)
    if not history:
        return row
    try:
        await state.runs.threads.copy(chat_id, row["id"], upto=upto)
        await state.runs.threads.refresh_summary(row["id"])
        async with state.pool.connection() as conn:
            return await get_owned(conn, row["id"], user_id)
    except BaseException:
        await discard(state, user_id, row["id"])
        raise


async def discard(state: AppState, user_id: UUID, chat_id: UUID) -> None:
    """Remove a chat no run has touched yet (half a copy is none) with its thread."""
    async with state.pool.connection() as conn:
        await chats_store.delete_owned(conn, chat_id, user_id)
    await state.runs.threads.delete(chat_id)


async def page(
    conn: Conn,
    user_id: UUID,
    *,
    status: ChatStatus | None,
    agent_id: UUID | None,
    limit: int,
    offset: int,
    q: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of the user's chats, most recently active first, and how many match."""
    rows, total = await chats_store.list_page(
        conn, user_id=user_id, status=status, agent_id=agent_id, limit=limit, offset=offset, q=q
    )
    return [chat_out(row) for row in rows], total


async def update(
    conn: Conn, chat_id: UUID, user_id: UUID, fields: dict[str, Any]
) -> dict[str, Any]:
    """Rename, archive or unarchive the user's chat; 404 if it is not theirs."""
    row = await chats_store.update_owned(conn, chat_id, user_id, fields)
    if row is None:
        raise NotFound("Chat not found")
    return chat_out(row)
