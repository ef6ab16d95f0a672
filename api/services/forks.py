"""Forking a chat (at a checkpoint, or with one of its messages edited) and regenerating an
answer. Both branch the conversation from the state just before a user message: a fork copies
the thread up to there into a new chat, a regenerate branches the same thread there (the
answer it replaces stays in the chat's history)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.messages import BaseMessage, HumanMessage

from api.errors import InvalidInput, NotFound
from api.schemas.messages import MessagePart
from api.services import chats as chats_service
from api.services import images as images_service
from api.services.chats import get_owned
from api.services.messages import CHECKPOINT_NOT_FOUND, ready
from api.state import AppState
from graphs import images
from graphs.events import EventSource
from graphs.runtime.threads import Threads
from storage.rows import AgentRow, ChatRow, RunRow

NOT_A_USER_MESSAGE = "not_a_user_message"


def user_message(messages: list[BaseMessage], message_id: str) -> HumanMessage:
    """The user message ``message_id`` among ``messages``; 422 if there is none."""
    for message in messages:
        if message.id == message_id:
            if isinstance(message, HumanMessage):
                return message
            break
    raise InvalidInput("`message_id` names no user message of this chat", code=NOT_A_USER_MESSAGE)


async def start_point(threads: Threads, chat_id: UUID, tip: Any, message_id: str) -> Any:
    """The checkpoint just before ``message_id`` entered the branch that ends at ``tip``: the
    end of the turn before it (or, for the first message, the input checkpoint that added it,
    which has no parent)."""
    chain, index = await threads.added_at(chat_id, tip, message_id)
    if index >= len(chain):
        # Only possible if the oldest checkpoint already held it (state written by hand).
        raise InvalidInput("This message has no earlier state to branch from", code="no_branch")
    before = await threads.snapshot(chat_id, chain[index])
    # A run's input checkpoint has the message waiting in its input channel: the turn before
    # is its parent, where the thread was idle.
    if (before.metadata or {}).get("source") == "input" and index + 1 < len(chain):
        return await threads.snapshot(chat_id, chain[index + 1])
    return before


async def regenerate(
    state: AppState, user_id: UUID, chat_id: UUID, message_id: str
) -> tuple[RunRow, EventSource]:
    """Answer the chat's last user message again, on a new branch of its thread."""
    _, chat, agent, personal = await ready(state, user_id, chat_id)
    threads = state.runs.threads
    tip = await threads.snapshot(chat_id)
    messages: list[BaseMessage] = list(tip.values.get("messages", [])) if tip else []
    message = user_message(messages, message_id)
    last = next(m for m in reversed(messages) if isinstance(m, HumanMessage))
    if last.id != message_id:
        raise InvalidInput(
            "Only the chat's last user message can be regenerated; fork the chat with an "
            "edit to answer an earlier one again",
            code="not_the_last_user_message",
        )
    # A message with images is answered again with its images.
    parts = None
    if isinstance(message.content, list) and images.has_images(message.content):
        images_service.check_model(state, agent)
        parts = [b if isinstance(b, dict) else {"type": "text", "text": b} for b in message.content]
    start = await start_point(threads, chat_id, tip, message_id)
    return await state.runs.start(
        chat=chat, agent=agent, user_id=user_id, content=message.text, profile=personal,
        checkpoint_id=start.config["configurable"]["checkpoint_id"], message_id=message_id,
        parts=parts,
    )  # fmt: skip


async def fork(
    state: AppState,
    user_id: UUID,
    chat_id: UUID,
    *,
    checkpoint_id: str | None,
    edit: tuple[str, str | list[MessagePart]] | None,
) -> tuple[ChatRow, tuple[RunRow, EventSource] | None]:
    """A new chat holding the chat's history up to ``checkpoint_id`` (the latest without it);
    with ``edit`` (message id, new content), up to just before that user message, which the
    new chat then answers with the new content (the run is returned): new text keeps the
    message's images, new parts replace all of it. Nothing is created when any of it cannot
    be done."""
    if edit is not None:
        _, original, agent, personal = await ready(state, user_id, chat_id, archived_ok=True)
    else:
        async with state.pool.connection() as conn:
            await get_owned(conn, chat_id, user_id)
    threads = state.runs.threads
    tip = await threads.snapshot(chat_id, checkpoint_id)
    if tip is None and checkpoint_id is not None:
        raise NotFound("No such checkpoint in this chat", code=CHECKPOINT_NOT_FOUND)
    upto = tip.config["configurable"]["checkpoint_id"] if tip is not None else None
    forked_from: dict[str, Any] = {"chat_id": str(chat_id), "checkpoint_id": upto}
    if edit is not None:
        message_id, content = edit
        message = user_message(list(tip.values.get("messages", [])) if tip else [], message_id)
        text, parts = await _edited(state, original, agent, message, content)
        start = await start_point(threads, chat_id, tip, message_id)
        upto = start.config["configurable"]["checkpoint_id"]
        if start.parent_config is None and (start.metadata or {}).get("source") == "input":
            # The first message: nothing came before it, so the fork starts empty.
            upto = None
        forked_from = {"chat_id": str(chat_id), "checkpoint_id": upto, "message_id": message_id}
    copy = await chats_service.copy(
        state, user_id, chat_id, upto=upto, history=upto is not None, forked_from=forked_from
    )
    if edit is None:
        return copy, None
    try:
        run = await state.runs.start(
            chat=copy, agent=agent, user_id=user_id, content=text, profile=personal,
            checkpoint_id=upto, parts=parts,
        )  # fmt: skip
    except BaseException:
        # A fork whose answer cannot start is not made.
        await chats_service.discard(state, user_id, copy["id"])
        raise
    return copy, run


async def _edited(
    state: AppState,
    chat: ChatRow,
    agent: AgentRow,
    message: HumanMessage,
    content: str | list[MessagePart],
) -> tuple[str, list[dict[str, Any]] | None]:
    """An edited message's text and, when it has images, its content blocks: new parts are
    checked as a new message's (files of the original chat), new text keeps the images the
    message had, after it."""
    if not isinstance(content, str):
        return images_service.text_of(content), await images_service.blocks(
            state, chat, agent, content
        )
    held = message.content if isinstance(message.content, list) else []
    kept = [block for block in held if isinstance(block, dict) and images.is_image(block)]
    if not kept:
        return content, None
    images_service.check_model(state, agent)
    return content, [{"type": "text", "text": content}, *kept]
