"""Sending a message (which starts a run) and reading a chat's messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from api.errors import INVALID_TOKEN, Conflict, NotFound, Unauthorized
from api.schemas.messages import MessagePart
from api.services import feedback as feedback_service
from api.services import images as images_service
from api.services import webhooks as webhooks_service
from api.services.chats import get_readable
from api.state import AppState
from api.wire.native import is_visible, to_api
from graphs import custom
from graphs.events import Event, EventSource
from storage import runs as runs_store
from storage import turns as turns_store
from storage.rows import AgentRow, ChatRow, RunRow, UserRow
from storage.types import MultitaskStrategy


def profile(user: UserRow, interests: list[str]) -> dict[str, Any] | None:
    """What personalizes the prompt; ``None`` for a user who skipped onboarding."""
    if not user["onboarding_completed"]:
        return None
    return {
        "professional_role": user["professional_role"],
        "experience_level": user["experience_level"],
        "preferred_interaction_style": user["preferred_interaction_style"],
        "interests": interests,
    }


async def ready(
    state: AppState, user_id: UUID, chat_id: UUID, *, archived_ok: bool = False
) -> tuple[UserRow, ChatRow, AgentRow, dict[str, Any] | None]:
    """The user, chat, agent and profile of a message to the chat, once it is known the chat
    can take one (``archived_ok``: an archived chat may, as the original of a fork)."""
    async with state.pool.connection() as conn:
        turn = await turns_store.for_message(conn, user_id, chat_id)
    if turn is None:
        raise Unauthorized(INVALID_TOKEN)
    chat, agent = turn.chat, turn.agent
    if chat is None:
        raise NotFound("Chat not found")
    if chat["status"] == "archived" and not archived_ok:
        raise Conflict("This chat is archived; unarchive it to send messages")
    if agent is None:
        raise Conflict(
            "This thread has no agent yet; start it with an Agent Protocol run "
            "(POST /threads/{id}/runs with an assistant_id)"
        )
    if agent["deleted_at"] is not None:
        raise Conflict("This chat's agent has been retired; start a chat with another agent")
    return turn.user, chat, agent, profile(turn.user, turn.interests)


APPROVAL_PENDING = "approval_pending"


async def pending_approval(state: AppState, chat: ChatRow) -> list[dict[str, Any]] | None:
    """The chat's tool calls waiting for a decision (``{id, name, args}``), if any. Only a
    thread that waits on an interrupt is read."""
    if chat["thread_status"] != "interrupted":
        return None
    return await state.runs.threads.pending_approval(chat["id"])


async def refuse_while_pending(state: AppState, chat: ChatRow) -> None:
    """A 409 ``approval_pending`` while tool calls of the chat wait for a decision: a new
    message would leave them unanswered."""
    if calls := await pending_approval(state, chat):
        names = ", ".join(sorted({call["name"] for call in calls}))
        raise Conflict(
            f"Tool calls of this chat ({names}) wait for approval: decide on them with "
            "POST /chats/{id}/approvals first",
            code=APPROVAL_PENDING,
        )


async def send(
    state: AppState,
    user_id: UUID,
    chat_id: UUID,
    content: str | list[MessagePart],
    strategy: MultitaskStrategy = "reject",
    webhook: str | None = None,
) -> tuple[RunRow, EventSource]:
    """Check the run may have its ``webhook`` (as the rest of the body was, first), the chat
    can take a message and its images (if any), then start the run that answers it."""
    webhook = await webhooks_service.checked(state.settings, webhook)
    _, chat, agent, personal = await ready(state, user_id, chat_id)
    if agent["kind"] == "graph" and not custom.has_messages(agent["slug"]):
        raise Conflict(
            "This agent is a graph without a `messages` channel: run it through the Agent "
            "Protocol (POST /threads/{id}/runs)",
            code="not_a_chat_graph",
        )
    parts = None
    if not isinstance(content, str):
        parts = await images_service.blocks(state, chat, agent, content)
        content = images_service.text_of(content)
    await refuse_while_pending(state, chat)
    # ChatBusy and ShuttingDown are answered by api/errors.py.
    return await state.runs.start(
        chat=chat, agent=agent, user_id=user_id, content=content, profile=personal,
        strategy=strategy, webhook_url=webhook, parts=parts,
    )  # fmt: skip


def answer(run: Mapping[str, Any], events: list[Event]) -> dict[str, Any]:
    """The JSON answer of a finished run, from its events."""
    end = events[-1].data
    errors = [e.data for e in events if e.event == "error"]
    return {
        "run_id": run["id"],
        "status": end["status"],
        "messages": [e.data for e in events if e.event == "message"],
        "usage": end["usage"],
        "error": errors[0] if errors else None,
    }


async def page(
    state: AppState, user: UserRow, chat_id: UUID, *, limit: int, before: str | None
) -> dict[str, Any]:
    """Up to ``limit`` messages before message ``before`` (or the newest), oldest first."""
    async with state.pool.connection() as conn:
        await get_readable(conn, chat_id, user["id"])
    messages = [m for m in await state.runs.threads.messages(chat_id) if is_visible(m)]
    end = len(messages)
    if before is not None:
        end = next((i for i, m in enumerate(messages) if m.id == before), -1)
        if end < 0:
            raise NotFound("`before` names no message of this chat", code="message_not_found")
    start = max(0, end - limit)
    items = [to_api(m, str(chat_id)) for m in messages[start:end]]
    async with state.pool.connection() as conn:
        await feedback_service.attach(conn, chat_id, items)
    return {"items": items, "has_more": start > 0}


CHECKPOINT_NOT_FOUND = "checkpoint_not_found"


def checkpoint_out(snapshot: Any) -> dict[str, Any]:
    """A thread snapshot as a chat's history shows it."""
    metadata = snapshot.metadata or {}
    parent = snapshot.parent_config
    run_id = metadata.get("run_id")
    return {
        "checkpoint_id": snapshot.config["configurable"]["checkpoint_id"],
        "parent_checkpoint_id": parent["configurable"]["checkpoint_id"] if parent else None,
        "created_at": snapshot.created_at,
        "step": metadata.get("step"),
        "source": metadata.get("source"),
        "next": list(snapshot.next),
        "message_count": sum(
            1 for m in (snapshot.values or {}).get("messages", []) if is_visible(m)
        ),
        "run_id": run_id if isinstance(run_id, str) and run_id else None,
    }


async def history(
    state: AppState, user: UserRow, chat_id: UUID, *, limit: int, before: str | None
) -> dict[str, Any]:
    """Up to ``limit`` checkpoints of the chat older than ``before`` (or the newest), newest
    first."""
    async with state.pool.connection() as conn:
        await get_readable(conn, chat_id, user["id"])
    threads = state.runs.threads
    if before is not None and await threads.snapshot(chat_id, before) is None:
        raise NotFound("`before` names no checkpoint of this chat", code=CHECKPOINT_NOT_FOUND)
    # One more than asked tells whether there is more, without a count of the whole thread.
    snapshots = await threads.history(chat_id, limit=limit + 1, before=before)
    items = [checkpoint_out(s) for s in snapshots[:limit]]
    run_ids = list({UUID(i["run_id"]) for i in items if _is_uuid(i["run_id"])})
    async with state.pool.connection() as conn:
        versions = await runs_store.agent_versions_in_chat(conn, chat_id, run_ids)
    for item in items:
        run_id = item["run_id"]
        item["agent_version"] = versions.get(UUID(run_id)) if _is_uuid(run_id) else None
    return {"items": items, "has_more": len(snapshots) > limit}


def _is_uuid(value: str | None) -> bool:
    if value is None:
        return False
    try:
        UUID(value)
    except ValueError:
        return False
    return True


def snapshot_messages(snapshot: Any, chat_id: UUID) -> list[dict[str, Any]]:
    """The messages a thread snapshot holds, in the API's shape (feedback not filled in: null)."""
    messages = (snapshot.values or {}).get("messages", [])
    return [to_api(m, str(chat_id)) for m in messages if is_visible(m)]


async def state_at(
    state: AppState, user: UserRow, chat_id: UUID, checkpoint_id: str | None
) -> dict[str, Any]:
    """The chat's messages and next nodes at ``checkpoint_id`` (the latest without it)."""
    async with state.pool.connection() as conn:
        await get_readable(conn, chat_id, user["id"])
    snapshot = await state.runs.threads.snapshot(chat_id, checkpoint_id)
    if snapshot is None:
        if checkpoint_id is not None:
            raise NotFound("No such checkpoint in this chat", code=CHECKPOINT_NOT_FOUND)
        return {"checkpoint_id": None, "messages": [], "next": []}
    items = snapshot_messages(snapshot, chat_id)
    async with state.pool.connection() as conn:
        await feedback_service.attach(conn, chat_id, items)
    return {
        "checkpoint_id": snapshot.config["configurable"]["checkpoint_id"],
        "messages": items,
        "next": list(snapshot.next),
    }
