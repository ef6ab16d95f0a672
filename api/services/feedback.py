"""Feedback on agent messages: votes and comments, shown in the messages' metadata."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.messages import AIMessage

from api.errors import InvalidInput, NotFound
from api.services.chats import get_owned
from api.state import AppState
from storage import agents as agents_store
from storage import feedback as feedback_store
from storage import runs as runs_store
from storage.db import Conn

NOT_AN_AGENT_MESSAGE = "not_an_agent_message"


def feedback_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "score": row["score"],
        "comment": row["comment"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


async def attach(conn: Conn, chat_id: UUID, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages (in the API's shape) with ``metadata.feedback`` filled in on agent messages."""
    answers = [item for item in items if item["sender"] == "agent"]
    found = await feedback_store.for_messages(conn, chat_id, [item["id"] for item in answers])
    for item in answers:
        row = found.get(item["id"])
        item["metadata"]["feedback"] = feedback_out(row) if row is not None else None
    return items


async def _version(state: AppState, chat_id: UUID, tip: Any, message_id: str) -> int | None:
    """The version of the agent whose run wrote the message (None if no run did)."""
    chain, index = await state.runs.threads.added_at(chat_id, tip, message_id)
    added = await state.runs.threads.snapshot(chat_id, chain[index - 1])
    run_id = (added.metadata or {}).get("run_id") if added is not None else None
    if not isinstance(run_id, str):
        return None
    try:
        run_uuid = UUID(run_id)
    except ValueError:
        return None
    async with state.pool.connection() as conn:
        run = await runs_store.get(conn, run_uuid)
    return run["agent_version"] if run is not None else None


async def put(
    state: AppState,
    user_id: UUID,
    chat_id: UUID,
    message_id: str,
    *,
    score: int,
    comment: str | None,
) -> dict[str, Any]:
    """Record (or replace) the user's vote on an agent message of their chat."""
    async with state.pool.connection() as conn:
        chat = await get_owned(conn, chat_id, user_id)
    tip = await state.runs.threads.snapshot(chat_id)
    messages = (tip.values or {}).get("messages", []) if tip is not None else []
    if not any(m.id == message_id and isinstance(m, AIMessage) for m in messages):
        raise InvalidInput(
            "`message_id` names no agent message of this chat", code=NOT_AN_AGENT_MESSAGE
        )
    version = await _version(state, chat_id, tip, message_id)
    async with state.pool.connection() as conn:
        if version is None and chat["agent_id"] is not None:
            # Written outside a run (an import, a state update): the agent as it is now.
            agent = await agents_store.get(conn, chat["agent_id"], include_deleted=True)
            version = agent["version"] if agent is not None else None
        row = await feedback_store.put(
            conn, chat_id=chat_id, message_id=message_id, user_id=user_id,
            agent_id=chat["agent_id"], agent_version=version, score=score, comment=comment,
        )  # fmt: skip
    return {"message_id": message_id, **feedback_out(row)}


async def delete(state: AppState, user_id: UUID, chat_id: UUID, message_id: str) -> None:
    async with state.pool.connection() as conn:
        await get_owned(conn, chat_id, user_id)
        if not await feedback_store.delete(conn, chat_id, message_id):
            raise NotFound("This message has no feedback", code="feedback_not_found")


async def summary(conn: Conn, agent_id: UUID) -> dict[str, Any]:
    """Votes on the agent's messages, per agent version (newest first)."""
    if await agents_store.get(conn, agent_id, include_deleted=True) is None:
        raise NotFound("Agent not found")
    versions = await feedback_store.summary(conn, agent_id)
    return {
        "agent_id": agent_id,
        "versions": [
            {**row, "total": row["up"] + row["down"] + row["neutral"]} for row in versions
        ],
    }
