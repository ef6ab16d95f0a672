"""Agent Protocol runs on Switchboard's own runs: a thread is a chat, an assistant an agent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, get_args
from uuid import UUID

from api.errors import INVALID_TOKEN, Conflict, NotFound, Unauthorized
from api.schemas.protocol_runs import RunCreate
from api.services import chats as chats_service
from api.services import images as images_service
from api.services import webhooks as webhooks_service
from api.services.agents import assistant_ref, unknown_assistant
from api.services.messages import profile
from api.state import AppState
from api.wire.protocol import jsonable
from graphs.events import Event, EventSource, read_all
from storage import agents as agents_store
from storage import chats as chats_store
from storage import runs as runs_store
from storage import turns as turns_store
from storage.db import Conn
from storage.rows import AgentRow, ChatRow, DeliveryStateRow, RunRow
from storage.turns import Turn
from storage.types import ACTIVE, RunStatus

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


async def _turn(conn: Conn, user_id: UUID, thread_id: UUID | None, body: RunCreate) -> Turn:
    """The user, their thread (if named) and the live assistant ``body`` names: 401 when the
    user is gone, 404 when the assistant names nothing."""
    turn = await turns_store.for_protocol_run(
        conn, user_id, thread_id, assistant_ref(body.assistant_id)
    )
    if turn is None:
        raise Unauthorized(INVALID_TOKEN)
    if turn.agent is None:
        raise await unknown_assistant(conn, body.assistant_id)
    return turn


async def start(
    state: AppState,
    user_id: UUID,
    thread_id: UUID | None,
    body: RunCreate,
    *,
    delete_when_done: bool = True,
    turn: Turn | None = None,
) -> tuple[RunRow, EventSource, AgentRow]:
    """Start a run on the user's thread (or on a new, stateless one): (run, events, agent).

    A stateless run's thread is deleted once the run ends (``on_completion: "delete"``), unless
    the caller does it itself (``delete_when_done=False``: ``wait`` reads the values first).
    ``turn``: a stateless run's user and assistant, already read (a batch reads them first).
    A ``webhook`` is checked first, as the rest of the body was: refused, nothing is made.
    """
    webhook = await webhooks_service.checked(state.settings, body.webhook)
    async with state.pool.connection() as conn:
        if turn is None or thread_id is not None:
            turn = await _turn(conn, user_id, thread_id, body)
            assert turn.agent is not None
            # A batch's runs had their images checked, all of them, before the first started.
            await images_service.check_protocol_images(state, turn.agent, body)
        agent = turn.agent
        assert agent is not None
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


async def start_batch(state: AppState, user_id: UUID, bodies: list[RunCreate]) -> list[RunRow]:
    """Several stateless runs in the background, all or none: every assistant is found and
    every webhook checked before anything is created (a 404 or 422 creates nothing), and if one
    run cannot start (the server is
    shutting down), the runs already started are stopped and their threads deleted."""
    turns: dict[str, Turn] = {}
    for body in bodies:
        # A refused webhook must refuse the batch before any run starts (and ends, undone).
        await webhooks_service.checked(state.settings, body.webhook)
    async with state.pool.connection() as conn:
        for body in bodies:
            if body.assistant_id not in turns:
                turns[body.assistant_id] = await _turn(conn, user_id, None, body)
    for body in bodies:
        agent = turns[body.assistant_id].agent
        assert agent is not None
        await images_service.check_protocol_images(state, agent, body)
    started: list[RunRow] = []
    try:
        for body in bodies:
            run, _, _ = await start(state, user_id, None, body, turn=turns[body.assistant_id])
            started.append(run)
    except BaseException:
        for run in started:
            await asyncio.shield(_undo(state, run, user_id))
        raise
    return started


async def _undo(state: AppState, run: RunRow, user_id: UUID) -> None:
    """A run of a batch that failed: stopped, and its thread gone."""
    await state.runs.stop(run["id"], "interrupted", wait=10)
    await delete_stateless_thread(state, run, user_id)


NO_RUNS = "No runs found to cancel."
NONE_ACTIVE = (
    "No matching runs to cancel. Please verify the thread ID and run IDs are correct, and the "
    "runs haven't been deleted or completed."
)
# What a bulk cancel's ``status`` means.
_CANCEL_STATUSES: dict[str, list[RunStatus]] = {
    "pending": ["pending"],
    "running": ["running"],
    "all": ["pending", "running"],
}


async def cancel_many(
    state: AppState,
    user_id: UUID,
    *,
    thread_id: UUID | None,
    run_ids: list[UUID] | None,
    status: str | None,
    rollback: bool,
) -> list[UUID]:
    """Stop the user's runs a bulk cancel names, as the official server does: ``run_ids`` of
    the thread ``thread_id``, or every run with ``status`` (``pending``, ``running`` or
    ``all`` of them), in the user's threads only. Runs that are not the user's, not of that
    thread or already ended are left as they are; a 404 when none of the user's runs matched
    (``No runs found``) or none of those was active. The stopped runs' ids, once they ended
    (at most 10 s each)."""
    async with state.pool.connection() as conn:
        if status is not None:
            runs = await runs_store.active_of_user(conn, user_id, _CANCEL_STATUSES[status])
        else:
            assert thread_id is not None and run_ids is not None
            runs = await runs_store.owned_in_chat(conn, run_ids, thread_id, user_id)
    if not runs:
        raise NotFound(NO_RUNS)
    active = [run for run in runs if run["status"] in ACTIVE]
    if not active:
        raise NotFound(NONE_ACTIVE)
    await asyncio.gather(
        *(state.runs.stop(run["id"], "interrupted", wait=10, rollback=rollback) for run in active)
    )
    return [run["id"] for run in active]


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


# How often a thread's stream asks Postgres for the thread's next run while none is going:
# runs recorded by this process wake it at once, those of other processes within this.
NEXT_RUN_POLL_SECONDS = 1.0


class ThreadRuns:
    """The runs of one of the user's threads, one after the other, as a thread's stream
    follows them: the current one (or the one a client left off in, after its last event),
    then each run created after it, live, until the thread is deleted, the server shuts down
    or the reader leaves. Each item is ``(run, after, events)``: a batch of the run's events
    read after event ``after`` (a finished run's log may send its ``end`` again)."""

    def __init__(
        self, state: AppState, user_id: UUID, thread_id: UUID, first: RunRow | None, after: int,
        cursor: RunRow | None,
    ) -> None:  # fmt: skip
        self.state, self.user_id, self.thread_id = state, user_id, thread_id
        self.first, self.after, self.cursor = first, after, cursor

    async def __aiter__(self) -> AsyncIterator[tuple[RunRow, int, list[Event]]]:
        run, after, cursor = self.first, self.after, self.cursor
        with self.state.runs.watch_starts(self.thread_id) as started:
            while True:
                if run is None:
                    run = await self._next(cursor, started)
                    if run is None:
                        return
                    after = 0
                source = await self.state.runs.events(run["id"], active=run["status"] in ACTIVE)
                # A run whose events have expired has nothing left to send.
                if source is not None:
                    async for batch in source.read_batches(after):
                        yield run, after, batch
                cursor, run = run, None

    async def _next(self, cursor: RunRow | None, started: asyncio.Event) -> RunRow | None:
        """The thread's first run created after ``cursor``, once there is one; ``None`` when
        the thread is gone or the server shuts down."""
        shutdown, _ = self.state.runs.shutdown
        while not shutdown.is_set():
            started.clear()
            async with self.state.pool.connection() as conn:
                owned, run = await runs_store.next_of_owned_chat(
                    conn, self.thread_id, self.user_id, cursor
                )
            if not owned:
                return None
            if run is not None:
                return run
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(started.wait(), NEXT_RUN_POLL_SECONDS)
        return None


async def thread_runs(
    state: AppState, user_id: UUID, thread_id: UUID, resume: tuple[UUID, int] | None
) -> ThreadRuns:
    """What ``GET /threads/{id}/stream`` follows: after event ``resume[1]`` of run
    ``resume[0]`` (when that is a run of this thread of the user's), else from the first event
    of the thread's current run (its oldest active one), else from the next run it gets. 404
    when the thread is not the user's."""
    async with state.pool.connection() as conn:
        if await chats_store.get_owned(conn, thread_id, user_id) is None:
            raise NotFound("Thread not found")
        if resume is not None:
            run = await runs_store.get_owned(conn, resume[0], user_id)
            if run is not None and run["chat_id"] == thread_id:
                return ThreadRuns(state, user_id, thread_id, run, resume[1], None)
        current, active = await runs_store.current_of_chat(conn, thread_id)
    if active:
        return ThreadRuns(state, user_id, thread_id, current, 0, None)
    return ThreadRuns(state, user_id, thread_id, None, 0, current)
