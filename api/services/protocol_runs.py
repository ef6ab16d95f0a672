"""Agent Protocol runs on Switchboard's own runs: a thread is a chat, an assistant an agent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, get_args
from uuid import UUID

from api.errors import INVALID_TOKEN, Conflict, NotFound, Unauthorized
from api.schemas.protocol_runs import RunCreate
from api.services import chats as chats_service
from api.services import webhooks as webhooks_service
from api.services.agents import assistant_ref, unknown_assistant
from api.services.messages import profile
from api.state import AppState
from api.wire.protocol import jsonable
from graphs.events import Event, EventSource, read_all
from storage import agents as agents_store
from storage import chats as chats_store
from storage import turns as turns_store
from storage.db import Conn
from storage.rows import AgentRow, ChatRow, DeliveryStateRow, RunRow
from storage.types import RunStatus

log = logging.getLogger(__name__)

THREAD_NOT_FOUND = "Thread or assistant not found."
# Ours are the statuses of native runs; the protocol knows no "cancelled".
PROTOCOL_STATUS = {"cancelled": "interrupted"}


async def _thread(
    conn: Conn,
    user_id: UUID,
    thread_id: UUID,
    chat: ChatRow | None,
    agent: AgentRow,
    if_not_exists: str,
) -> ChatRow:
    """The user's thread ``thread_id`` (``chat``, as read and bound), created if asked."""
    if chat is None and if_not_exists == "create":
        # Taken by another user's thread: the same 404 as a missing one, nothing revealed.
        chat = await chats_store.insert_with_id(
            conn, chat_id=thread_id, user_id=user_id, agent_id=agent["id"]
        )
    if chat is None:
        raise NotFound(THREAD_NOT_FOUND)
    if chat["status"] == "archived":
        raise Conflict("This thread is archived; unarchive it to run it")
    return chat


async def start(
    state: AppState,
    user_id: UUID,
    thread_id: UUID | None,
    body: RunCreate,
    *,
    delete_when_done: bool = True,
) -> tuple[RunRow, EventSource, AgentRow]:
    """Start a run on the user's thread (or on a new, stateless one): (run, events, agent).

    A stateless run's thread is deleted once the run ends (``on_completion: "delete"``), unless
    the caller does it itself (``delete_when_done=False``: ``wait`` reads the values first).
    A ``webhook`` is checked first, as the rest of the body was: refused, nothing is made.
    """
    webhook = await webhooks_service.checked(state.settings, body.webhook)
    async with state.pool.connection() as conn:
        turn = await turns_store.for_protocol_run(
            conn, user_id, thread_id, assistant_ref(body.assistant_id)
        )
        if turn is None:
            raise Unauthorized(INVALID_TOKEN)
        agent = turn.agent
        if agent is None:
            raise await unknown_assistant(conn, body.assistant_id)
        if thread_id is None:
            chat = await chats_store.insert(conn, user_id=user_id, agent_id=agent["id"], title=None)
        else:
            chat = await _thread(conn, user_id, thread_id, turn.chat, agent, body.if_not_exists)
    try:
        # ChatBusy and ShuttingDown are answered by api/errors.py.
        run, events = await state.runs.start_protocol(
            chat=chat,
            agent=agent,
            user_id=user_id,
            request=body.graph_request(),
            profile=profile(turn.user, turn.interests),
            strategy=body.multitask_strategy,
            webhook_url=webhook,
        )
    except Exception:
        if turn.chat is None:
            # Created for this run, which never started: a refused run leaves no thread.
            async with state.pool.connection() as conn:
                await chats_store.delete_owned(conn, chat["id"], user_id)
        raise
    if thread_id is None and body.on_completion == "delete" and delete_when_done:
        deletion = state.runs.background(delete_after_run(state, run, user_id))
        events = _EndAfter(events, deletion)
    return run, events, agent


class _EndAfter:
    """A run's events whose ``end`` waits for ``work``: a stateless run's stream ends once its
    thread is gone, so a client that lists threads next never sees it."""

    def __init__(self, events: EventSource, work: asyncio.Task[Any]):
        self.events, self.work = events, work

    async def read(self, after: int = 0) -> AsyncIterator[Event]:
        async for batch in self.read_batches(after):
            for event in batch:
                yield event

    async def read_batches(self, after: int = 0) -> AsyncIterator[list[Event]]:
        async for batch in self.events.read_batches(after):
            if batch and batch[-1].event == "end":
                # Shielded: a reader that leaves does not stop the deletion.
                await asyncio.shield(self.work)
            yield batch


async def delete_after_run(state: AppState, run: RunRow, user_id: UUID) -> None:
    """A stateless run's thread goes once the run ends (its events stay readable a while)."""
    await state.runs.wait_ended(run["id"], seconds=24 * 3600)
    await delete_stateless_thread(state, run, user_id)


async def delete_stateless_thread(state: AppState, run: RunRow, user_id: UUID) -> None:
    try:
        await chats_service.delete(state, user_id, run["chat_id"])
    except NotFound:
        pass  # deleted by its owner meanwhile
    except Exception:
        log.exception("could not delete the thread of stateless run %s", run["id"])


def statuses(status: str) -> list[RunStatus]:
    """The stored statuses a protocol status filter means (``timeout``: none, never stored)."""
    return [ours for ours in get_args(RunStatus) if PROTOCOL_STATUS.get(ours, ours) == status]


def run_json(run: RunRow, delivery: DeliveryStateRow | None = None) -> dict[str, Any]:
    """A run as the protocol shows it, with its webhook ``delivery`` once there is one."""
    payload = dict(run.get("input") or {})
    metadata = payload.get("metadata") or {}
    kwargs = {k: payload.get(k) for k in ("input", "command", "config", "stream_mode")}
    return {
        "run_id": run["id"],
        "thread_id": run["chat_id"],
        "assistant_id": run["agent_id"],
        "created_at": run["created_at"],
        "updated_at": run["ended_at"] or run["started_at"] or run["created_at"],
        "status": PROTOCOL_STATUS.get(run["status"], run["status"]),
        "metadata": metadata,
        "kwargs": kwargs,
        "multitask_strategy": run["multitask_strategy"],
        "webhook": webhooks_service.webhook_out(run, delivery),
    }


async def outcome(state: AppState, run: RunRow, events: EventSource) -> Any:
    """What ``wait`` and ``join`` answer once the run ended: the thread's values (with
    ``__interrupt__`` when it waits for input), or ``{"__error__": …}`` when it failed."""
    ended = await read_all(events)
    failure = next((e.data for e in ended if e.event == "error"), None)
    if failure is not None:
        return {"__error__": failure}
    async with state.pool.connection() as conn:
        agent = await agents_store.get(conn, run["agent_id"], include_deleted=True)
    assert agent is not None
    graph = state.runs.threads.graph(agent)
    snapshot = await graph.aget_state({"configurable": {"thread_id": str(run["chat_id"])}})
    values = jsonable(snapshot.values) if isinstance(snapshot.values, dict) else {}
    if snapshot.interrupts:
        values["__interrupt__"] = jsonable(list(snapshot.interrupts))
    return values
