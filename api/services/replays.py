"""Replays: a recorded conversation asked again of another agent, or of the same agent on
another model, and compared turn by turn with the original.

Creating one checks everything first and then, in one transaction, opens the new chat (the
user's, with the replay's agent) and records the replay with one turn per user message of the
original (what it answered then included); ``replay_driver`` sends the turns in the background.
A model override rides on each run's input (``NativeInput.model_name``): the run is an ordinary
run of the agent with another model, recorded as such in ``runs.model_name``, and the chat
stays an ordinary chat of the agent (a message the user adds later uses the agent's own model).
Carrying it on the chat instead would have needed a column every run reads, for one feature.
"""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from langchain_core.messages import BaseMessage

from api.errors import Conflict, NotFound
from api.services import feedback as feedback_service
from api.services import images as images_service
from api.services.chats import get_owned as get_owned_chat
from api.services.comparison import answer_of, turns_of
from api.state import AppState
from api.wire import native
from graphs import images
from graphs.runtime import ShuttingDown
from storage import agents as agents_store
from storage import chats as chats_store
from storage import feedback as feedback_store
from storage import replays as replays_store
from storage import runs as runs_store
from storage.db import Conn
from storage.rows import ReplayRow, ReplayTurnRow
from storage.types import ACTIVE

NOT_FOUND = "Replay not found"
NOTHING_TO_REPLAY = "nothing_to_replay"
TITLE_CHARS = 200


async def create(
    state: AppState, user_id: UUID, chat_id: UUID, *, agent_id: UUID | None, model_name: str | None
) -> dict[str, Any]:
    """Replay the user's chat against ``agent_id`` (the chat's own agent without it), on
    ``model_name`` (the agent's own model without it). Nothing is created when it cannot be."""
    if not state.runs.accepting:
        raise ShuttingDown()
    async with state.pool.connection() as conn:
        source = await get_owned_chat(conn, chat_id, user_id)
        agent_id = agent_id or source["agent_id"]
        if agent_id is None:
            raise Conflict("This thread has no agent yet; name one with `agent_id`")
        agent = await agents_store.get(conn, agent_id, include_deleted=True)
        if agent is None:
            raise NotFound("`agent_id` names no agent", code="agent_not_found")
        if agent["deleted_at"] is not None:
            raise Conflict("This agent has been retired; replay against another one")
        if await runs_store.active_run_id(conn, chat_id) is not None:
            # Its last answer is still being written: the comparison would miss it.
            raise Conflict("The chat has an active run; replay it once the run has ended")
    messages = await state.runs.threads.messages(chat_id)
    turns = [
        (message.id or str(uuid.uuid4()), message.text, _blocks(message), answer_of(replies))
        for message, replies in turns_of(messages)
    ]
    if not turns:
        raise Conflict("This chat has no user message to replay", code=NOTHING_TO_REPLAY)
    if any(parts is not None for _, _, parts, _ in turns):
        # Its images are sent again: to a model that sees them, or not at all.
        images_service.check_model(state, agent, model_name)
    title = f"Replay of {source['title']}"[:TITLE_CHARS] if source["title"] else None
    async with state.pool.connection() as conn:
        async with conn.transaction():
            target = await chats_store.insert(conn, user_id=user_id, agent_id=agent_id, title=title)
            replay = await replays_store.insert(
                conn, user_id=user_id, source_chat_id=chat_id, target_chat_id=target["id"],
                agent_id=agent_id, model_name=model_name, worker_id=state.replays.worker_id,
                turns=turns,
            )  # fmt: skip
        # As created: read before its driver starts, which may move it on at once.
        out = await _out(conn, replay, await replays_store.turns(conn, replay["id"]))
    state.replays.launch(replay["id"])
    return out


async def get(state: AppState, user_id: UUID, replay_id: UUID) -> dict[str, Any]:
    """The user's replay with its turns; 404 when it is not theirs."""
    async with state.pool.connection() as conn:
        replay = await replays_store.get_owned(conn, replay_id, user_id)
        if replay is None:
            raise NotFound(NOT_FOUND)
        return await _out(conn, replay, await replays_store.turns(conn, replay_id))


async def list_for_chat(
    state: AppState, user_id: UUID, chat_id: UUID, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of the user's replays of a chat, newest first (without their turns)."""
    async with state.pool.connection() as conn:
        await get_owned_chat(conn, chat_id, user_id)
        rows, total = await replays_store.list_for_chat(
            conn, chat_id, user_id, limit=limit, offset=offset
        )
    return [summary(row) for row in rows], total


async def cancel(state: AppState, user_id: UUID, replay_id: UUID) -> tuple[ReplayRow, bool]:
    """Stop the user's replay and the run of its turn in flight; the replay afterwards, and
    whether this stopped it (``False``: it had ended already)."""
    async with state.pool.connection() as conn:
        replay = await replays_store.cancel_owned(conn, replay_id, user_id)
        if replay is None:
            ended = await replays_store.get_owned(conn, replay_id, user_id)
            if ended is None:
                raise NotFound(NOT_FOUND)
            return ended, False
        in_flight = await replays_store.running_turns(conn, replay_id)
    for turn in in_flight:
        assert turn["run_id"] is not None
        async with state.pool.connection() as conn:
            run = await runs_store.get(conn, turn["run_id"])
        if run is not None and run["status"] in ACTIVE:
            await state.runs.stop(run["id"], "cancelled", wait=5)
            async with state.pool.connection() as conn:
                run = await runs_store.get(conn, run["id"])
        if run is not None and run["status"] not in ACTIVE:
            # Its driver may be another process's, or gone: the turn says how it ended now.
            await state.replays.record(replay, turn, run)
    return replay, True


def summary(replay: ReplayRow) -> dict[str, Any]:
    """A replay as listings show it: everything but its turns."""
    return {
        "id": replay["id"],
        "status": replay["status"],
        "progress": {"done": replay["done"], "total": replay["total"]},
        "source_chat_id": replay["source_chat_id"],
        "target_chat_id": replay["target_chat_id"],
        "agent_id": replay["agent_id"],
        "model_name": replay["model_name"],
        "error": replay["error"],
        "created_at": replay["created_at"],
        "started_at": replay["started_at"],
        "ended_at": replay["ended_at"],
    }


async def _out(conn: Conn, replay: ReplayRow, turns: list[ReplayTurnRow]) -> dict[str, Any]:
    """The replay with its turns, each original answer with its feedback as it is now."""
    answered = [t["original"]["message_id"] for t in turns if t["original"]["message_id"]]
    votes = await feedback_store.for_messages(conn, replay["source_chat_id"], answered)
    return {**summary(replay), "turns": [_turn_out(turn, votes) for turn in turns]}


def _blocks(message: BaseMessage) -> list[dict[str, Any]] | None:
    """A user message's content blocks when it has images (``None``: its text is all of it)."""
    if not isinstance(message.content, list) or not images.has_images(message.content):
        return None
    return [b if isinstance(b, dict) else {"type": "text", "text": b} for b in message.content]


def _turn_out(turn: ReplayTurnRow, votes: dict[str, Any]) -> dict[str, Any]:
    vote = votes.get(turn["original"]["message_id"] or "")
    message: dict[str, Any] = {"id": turn["message_id"], "content": turn["content"]}
    if turn["parts"] is not None:
        message["parts"] = native.parts(turn["parts"])
    return {
        "position": turn["position"],
        "message": message,
        "status": turn["status"],
        "run_id": turn["run_id"],
        "agent_version": turn.get("agent_version"),
        "original": {
            **turn["original"],
            "feedback": feedback_service.feedback_out(vote) if vote is not None else None,
        },
        "new": turn["answer"],
        "similarity": turn["similarity"],
    }
