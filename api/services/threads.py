"""Agent Protocol threads and assistants over chats, agents and the checkpointer."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any, cast
from uuid import UUID

from fastapi.encoders import jsonable_encoder
from langgraph.errors import InvalidUpdateError

from api.errors import INVALID_TOKEN, Conflict, InvalidInput, NotFound, Unauthorized
from api.schemas.chats import ThreadTtl
from api.schemas.common import json_size
from api.schemas.protocol import HistoryQuery, StateUpdate, ThreadCreate, ThreadSearch
from api.services import chats as chats_service
from api.state import AppState
from api.wire.protocol import jsonable, known_total
from graphs.runtime.inputs import stamp_messages
from storage import agents as agents_store
from storage import lifecycle as lifecycle_store
from storage import threads as threads_store
from storage import users as users_store
from storage.rows import AgentRow, AgentVersionRow, ThreadRow, UserRow

THREAD_NOT_FOUND = "Thread not found"


def assistant_json(agent: AgentRow) -> dict[str, Any]:
    return {
        "assistant_id": agent["id"],
        "graph_id": agent["slug"],
        "config": {
            "configurable": {
                "model_name": agent["model_name"],
                "tools_enabled": agent["tools_enabled"],
                "tools_requiring_approval": agent["tools_requiring_approval"],
            }
        },
        "context": {},
        "metadata": {},
        "name": agent["name"],
        "description": agent["description"] or None,
        "version": agent["version"],
        "created_at": agent["created_at"],
        "updated_at": agent["updated_at"],
    }


def assistant_version_json(agent: AgentRow, version: AgentVersionRow) -> dict[str, Any]:
    """``agent`` as it was at ``version`` (the slug is the agent's: it never changes)."""
    return {
        "assistant_id": agent["id"],
        "graph_id": agent["slug"],
        "config": {
            "configurable": {
                "model_name": version["model_name"],
                "tools_enabled": version["tools_enabled"],
                "tools_requiring_approval": version["tools_requiring_approval"],
            }
        },
        "context": {},
        "metadata": {},
        "name": version["name"],
        "description": version["description"] or None,
        "version": version["version"],
        "created_at": version["created_at"],
    }


def graph_of(state: AppState, agent: AgentRow) -> Any:
    """The agent's compiled graph, with the Postgres checkpointer (cached per version)."""
    return state.runs.threads.graph(agent)


async def owned(state: AppState, user: UserRow, thread_id: UUID) -> ThreadRow:
    async with state.pool.connection() as conn:
        thread = await threads_store.get(conn, user["id"], thread_id)
    if thread is None:
        raise NotFound(THREAD_NOT_FOUND)
    return thread


async def _agent(state: AppState, thread: ThreadRow) -> AgentRow | None:
    if thread["agent_id"] is None:
        return None
    async with state.pool.connection() as conn:
        return await agents_store.get(conn, thread["agent_id"], include_deleted=True)


def _config(thread_id: UUID | str, checkpoint_id: str | None = None) -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": str(thread_id), "checkpoint_ns": ""}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def _checkpoint(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if not config:
        return None
    configurable = config["configurable"]
    return {
        "thread_id": configurable["thread_id"],
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
        "checkpoint_id": configurable.get("checkpoint_id"),
        "checkpoint_map": configurable.get("checkpoint_map"),
    }


def state_json(snapshot: Any) -> dict[str, Any]:
    """A LangGraph ``StateSnapshot`` as the protocol's ThreadState."""
    return {
        "values": jsonable(snapshot.values) if isinstance(snapshot.values, dict) else {},
        "next": list(snapshot.next),
        "tasks": [
            {
                "id": task.id,
                "name": task.name,
                "path": jsonable(task.path),
                # The type only: exception text may hold internals.
                "error": type(task.error).__name__ if task.error else None,
                "interrupts": jsonable(list(task.interrupts)),
                "checkpoint": None,
                "state": None,
                "result": jsonable(task.result),
            }
            for task in snapshot.tasks
        ],
        "checkpoint": _checkpoint(snapshot.config),
        "metadata": jsonable(snapshot.metadata or {}),
        "created_at": snapshot.created_at,
        "parent_checkpoint": _checkpoint(snapshot.parent_config),
        "interrupts": jsonable(list(snapshot.interrupts)),
    }


def _empty_state(thread_id: UUID) -> dict[str, Any]:
    return {
        "values": {},
        "next": [],
        "tasks": [],
        "checkpoint": {"thread_id": str(thread_id), "checkpoint_ns": "", "checkpoint_id": None},
        "metadata": {},
        "created_at": None,
        "parent_checkpoint": None,
        "interrupts": [],
    }


async def get_state(
    state: AppState, user: UserRow, thread_id: UUID, checkpoint_id: str | None = None
) -> dict[str, Any]:
    thread = await owned(state, user, thread_id)
    agent = await _agent(state, thread)
    if agent is None:
        if checkpoint_id:
            raise NotFound("Checkpoint not found")
        return _empty_state(thread_id)
    snapshot = await graph_of(state, agent).aget_state(_config(thread_id, checkpoint_id))
    # LangGraph answers a missing checkpoint with an empty snapshot that has no creation time.
    if snapshot.created_at is None:
        if checkpoint_id:
            raise NotFound("Checkpoint not found")
        return _empty_state(thread_id)
    return state_json(snapshot)


# Checkpoints read from Postgres at once for a page of history: each row holds the whole state.
HISTORY_BATCH = 10


async def history(
    state: AppState, user: UserRow, thread_id: UUID, query: HistoryQuery
) -> list[Any]:
    """Past states, newest first: at most ``query.limit``, and no more once the page holds
    ``history_max_bytes`` of JSON (the first state goes whatever its size, so every page moves
    on). The states come encoded as the response sends them, so what is counted is what is sent.
    """
    thread = await owned(state, user, thread_id)
    agent = await _agent(state, thread)
    if agent is None:
        return []
    start = query.checkpoint.checkpoint_id if query.checkpoint else None
    before = query.before.checkpoint_id if not isinstance(query.before, str | None) else None
    if isinstance(query.before, str):
        before = query.before
    graph = graph_of(state, agent)
    budget = state.settings.history_max_bytes
    page: list[Any] = []
    used = 0
    batch = min(query.limit, HISTORY_BATCH)
    while batch:
        # In batches, each of about what the budget has room for: the rows of one query are
        # all read into memory before the first is decoded.
        states = graph.aget_state_history(
            _config(thread_id, start),
            filter=query.metadata or None,
            before=_config(thread_id, before) if before else None,
            limit=batch,
        )
        read = 0
        # Closed when left early: it holds a pooled connection until then.
        async with aclosing(states):
            async for snapshot in states:
                read += 1
                item = jsonable_encoder(state_json(snapshot))
                size = json_size(item)
                if page and used + size > budget:
                    return page
                page.append(item)
                used += size
                before = snapshot.config["configurable"]["checkpoint_id"]
        if read < batch:
            return page
        left = query.limit - len(page)
        batch = min(left, HISTORY_BATCH, max(1, (budget - used) // max(1, used // len(page))))
    return page


async def update_state(
    state: AppState, user: UserRow, thread_id: UUID, body: StateUpdate
) -> dict[str, Any]:
    thread = await owned(state, user, thread_id)
    if thread["protocol_status"] == "busy":
        raise Conflict("The thread has an active run; its state changes when the run ends")
    agent = await _agent(state, thread)
    if agent is None:
        raise Conflict("This thread has no agent yet: run it once before updating its state")
    # A model is never falsy: ``body.checkpoint and …`` is None or the checkpoint's id.
    checkpoint_id = cast(
        "str | None", body.checkpoint_id or (body.checkpoint and body.checkpoint.checkpoint_id)
    )
    graph = graph_of(state, agent)
    if body.as_node is not None and body.as_node not in graph.nodes:
        detail = f"No node {body.as_node!r} in this thread's graph"
        raise NotFound(detail, code="node_not_found")
    try:
        config = await graph.aupdate_state(
            _config(thread_id, checkpoint_id), stamp_messages(body.values), as_node=body.as_node
        )
    except InvalidUpdateError as exc:
        if str(exc).startswith("Ambiguous update"):
            # Which node wrote last makes it so: the thread's state, not the request.
            raise Conflict("In this thread's state the update needs `as_node`") from None
        raise InvalidInput("The update does not fit this thread's graph") from None
    except (ValueError, KeyError, TypeError, NotImplementedError) as exc:
        # LangGraph's own validation (an unknown node or channel): say which, not how.
        raise InvalidInput(
            f"The update does not fit this thread's graph ({type(exc).__name__})"
        ) from None
    await state.runs.threads.refresh_summary(thread_id)
    return {"checkpoint": _checkpoint(config)}


async def thread_json(state: AppState, thread: ThreadRow) -> dict[str, Any]:
    values: dict[str, Any] = {}
    interrupts: dict[str, Any] = {}
    if thread["agent_id"] is not None:
        agent = await _agent(state, thread)
        assert agent is not None
        snapshot = await graph_of(state, agent).aget_state(_config(thread["id"]))
        if isinstance(snapshot.values, dict):
            values = jsonable(snapshot.values)
        for task in snapshot.tasks:
            if task.interrupts:
                interrupts[task.id] = jsonable(list(task.interrupts))
    return _thread_out(thread, values, interrupts)


def _thread_out(
    thread: ThreadRow, values: dict[str, Any], interrupts: dict[str, Any]
) -> dict[str, Any]:
    metadata = dict(thread["metadata"])
    if thread["agent_id"] is not None:
        metadata.setdefault("graph_id", thread["graph_id"])
        metadata.setdefault("assistant_id", str(thread["agent_id"]))
    return {
        "thread_id": thread["id"],
        "created_at": thread["created_at"],
        "updated_at": thread["updated_at"],
        "state_updated_at": thread["last_message_at"] or thread["updated_at"],
        "metadata": metadata,
        "status": thread["protocol_status"],
        "values": values,
        "interrupts": interrupts,
        "config": {},
        "error": None,
    }


async def create(state: AppState, user_id: UUID, body: ThreadCreate) -> dict[str, Any]:
    """A new thread; with ``graph_id`` in its metadata it is bound to that agent at once."""
    async with state.pool.connection() as conn:
        agent = None
        if isinstance(body.metadata.get("graph_id"), str):
            agent = await agents_store.get_by_slug(conn, body.metadata["graph_id"])
            if agent is None:
                raise InvalidInput(f"Unknown graph_id {body.metadata['graph_id']!r}")
        metadata = dict(body.metadata)
        if agent is not None:
            metadata["assistant_id"] = str(agent["id"])
        row = await threads_store.insert(
            conn,
            user_id=user_id,
            thread_id=body.thread_id,
            agent_id=agent["id"] if agent else None,
            metadata=metadata,
            ttl_minutes=body.ttl.ttl if body.ttl else None,
            ttl_strategy=body.ttl.strategy if body.ttl else None,
        )
        if row is None:
            if await users_store.get(conn, user_id) is None:
                raise Unauthorized(INVALID_TOKEN)
            assert body.thread_id is not None
            existing = await threads_store.get(conn, user_id, body.thread_id)
            # Someone else's id is "taken", exactly like one of ours with if_exists=raise.
            if existing is None or body.if_exists == "raise":
                raise Conflict(f"Thread {body.thread_id} already exists")
            return await thread_json(state, existing)
    # Just created: idle, and nothing in it yet; no need to read it back.
    thread: ThreadRow = {
        **row,
        "graph_id": agent["slug"] if agent else None,
        "protocol_status": "idle",
    }
    return _thread_out(thread, {}, {})


async def search(state: AppState, user_id: UUID, body: ThreadSearch) -> list[dict[str, Any]]:
    """The user's threads a search matches, as the protocol shows them (never another's)."""
    async with state.pool.connection() as conn:
        rows = await threads_store.search(
            conn,
            user_id,
            metadata=body.metadata,
            ids=body.ids,
            status=body.status,
            sort_by=body.sort_by or "created_at",
            descending=(body.sort_order or "desc") == "desc",
            limit=body.limit,
            offset=body.offset,
        )
    return [await thread_json(state, row) for row in rows]


async def search_page(
    state: AppState, user_id: UUID, body: ThreadSearch
) -> tuple[list[dict[str, Any]], int]:
    """A search's page, and how many of the user's threads match it in all (counted only
    when the page does not tell)."""
    page = await search(state, user_id, body)
    total = known_total(len(page), body.offset, body.limit)
    if total is None:
        total = await count(state, user_id, body)
    return page, total


async def count(state: AppState, user_id: UUID, body: ThreadSearch) -> int:
    async with state.pool.connection() as conn:
        return await threads_store.count(
            conn, user_id, metadata=body.metadata, ids=body.ids, status=body.status
        )


async def merge_metadata(
    state: AppState,
    user: UserRow,
    thread_id: UUID,
    metadata: dict[str, Any],
    ttl: ThreadTtl | None = None,
) -> dict[str, Any]:
    """Merge ``metadata`` into the user's thread (and give it ``ttl``, counted from now); the
    thread as it is afterwards."""
    async with state.pool.connection() as conn, conn.transaction():
        if await threads_store.merge_metadata(conn, user["id"], thread_id, metadata) is None:
            raise NotFound(THREAD_NOT_FOUND)
        if ttl is not None:
            await lifecycle_store.set_ttl(conn, user["id"], thread_id, ttl.ttl, ttl.strategy)
    return await thread_json(state, await owned(state, user, thread_id))


async def copy(state: AppState, user: UserRow, thread_id: UUID) -> dict[str, Any]:
    """A new thread of the caller's with the same agent, metadata and every checkpoint (ids
    included) of their thread ``thread_id``."""
    row = await chats_service.copy(state, user["id"], thread_id, not_found=THREAD_NOT_FOUND)
    return await thread_json(state, await owned(state, user, row["id"]))
