"""Deleting a chat while it runs, through either API: the run is stopped first (its stream ends
with ``cancelled``), then the chat, its runs and every checkpoint row of its thread are gone,
and nothing is written for that thread afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import User
from tests.sse import parse

SSE = {"Accept": "text/event-stream"}
# 200 tokens 10 ms apart: the run would go on for about two seconds.
SLOW_MODEL = "fake:tokens-200@10"
RUN_SECONDS = 2.0


async def _rows(database_url: str, thread_id: str) -> dict[str, int]:
    counts = {}
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for table in ("checkpoints", "checkpoint_writes", "checkpoint_blobs"):
            cur = await conn.execute(
                f"SELECT count(*) FROM {table} WHERE thread_id = %s",  # noqa: S608
                (thread_id,),
            )
            counts[table] = (await cur.fetchone())[0]
        cur = await conn.execute("SELECT count(*) FROM runs WHERE chat_id = %s", (thread_id,))
        counts["runs"] = (await cur.fetchone())[0]
    return counts


async def _until_checkpointed(database_url: str, thread_id: str) -> None:
    """Wait until the run has written to its thread (so a delete has something to remove)."""
    for _ in range(500):
        if (await _rows(database_url, thread_id))["checkpoints"] > 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the run never checkpointed")


StartFn = Callable[[httpx.AsyncClient, User, dict[str, Any]], Awaitable[tuple[str, Any]]]


async def _native(client: httpx.AsyncClient, user: User, agent: dict[str, Any]):
    chat = await client.post("/chats/", json={"agent_id": agent["id"]}, headers=user.headers)
    chat_id = chat.json()["id"]
    streaming = asyncio.create_task(
        client.post(
            f"/chats/{chat_id}/messages", json={"content": "go"}, headers=user.headers | SSE
        )
    )
    return chat_id, streaming, f"/chats/{chat_id}"


async def _protocol(client: httpx.AsyncClient, user: User, agent: dict[str, Any]):
    thread = await client.post("/threads", json={}, headers=user.headers)
    thread_id = thread.json()["thread_id"]
    body = {
        "assistant_id": agent["id"],
        "input": {"messages": [{"role": "user", "content": "go"}]},
        "stream_mode": ["messages-tuple"],
    }
    streaming = asyncio.create_task(
        client.post(f"/threads/{thread_id}/runs/stream", json=body, headers=user.headers)
    )
    return thread_id, streaming, f"/threads/{thread_id}"


@pytest.mark.parametrize("start", [_native, _protocol], ids=["native", "protocol"])
async def test_deleting_a_chat_while_it_runs_stops_the_run_and_leaves_nothing(
    client: httpx.AsyncClient, user: User, admin: User, database_url: str, start: Any
) -> None:
    made = await client.post(
        "/agents/", json={"name": "Slow", "model_name": SLOW_MODEL}, headers=admin.headers
    )
    thread_id, streaming, path = await start(client, user, made.json())
    await _until_checkpointed(database_url, thread_id)

    deleted = await client.delete(path, headers=user.headers)
    assert deleted.status_code == 204
    # The stream ended when the run was stopped, with cancelled as its last word.
    response = await asyncio.wait_for(streaming, timeout=RUN_SECONDS)
    events, _ = parse(response.text)
    assert events[-1].event == "end"
    assert events[-1].data["status"] == "cancelled"
    assert sum(e.event in ("token", "messages") for e in events) < 200

    # Past the time the run would have finished: nothing came back for the thread.
    await asyncio.sleep(RUN_SECONDS + 0.5)
    assert await _rows(database_url, thread_id) == {
        "checkpoints": 0,
        "checkpoint_writes": 0,
        "checkpoint_blobs": 0,
        "runs": 0,
    }
    assert (await client.get(path, headers=user.headers)).status_code == 404


async def test_deleting_a_chat_stops_its_queued_runs_too(
    client: httpx.AsyncClient, user: User, admin: User, database_url: str
) -> None:
    made = await client.post(
        "/agents/", json={"name": "Slow", "model_name": SLOW_MODEL}, headers=admin.headers
    )
    chat_id, first, path = await _native(client, user, made.json())
    await _until_checkpointed(database_url, chat_id)
    queued = asyncio.create_task(
        client.post(
            f"/chats/{chat_id}/messages",
            json={"content": "after", "multitask_strategy": "enqueue"},
            headers=user.headers | SSE,
        )
    )
    for _ in range(200):
        if (await _rows(database_url, chat_id))["runs"] == 2:
            break
        await asyncio.sleep(0.01)

    assert (await client.delete(path, headers=user.headers)).status_code == 204
    for streaming in (first, queued):
        events, _ = parse((await asyncio.wait_for(streaming, timeout=RUN_SECONDS)).text)
        assert (events[-1].event, events[-1].data["status"]) == ("end", "cancelled")
    await asyncio.sleep(RUN_SECONDS + 0.5)
    assert set((await _rows(database_url, chat_id)).values()) == {0}


async def test_deleting_another_users_chat_is_a_404_and_stops_nothing(
    client: httpx.AsyncClient, user: User, other_user: User, admin: User, database_url: str
) -> None:
    made = await client.post(
        "/agents/", json={"name": "Slow", "model_name": "fake:tokens-20@10"}, headers=admin.headers
    )
    chat_id, streaming, path = await _native(client, user, made.json())
    await _until_checkpointed(database_url, chat_id)
    for route in (path, f"/threads/{chat_id}"):
        assert (await client.delete(route, headers=other_user.headers)).status_code == 404
    events, _ = parse((await asyncio.wait_for(streaming, timeout=RUN_SECONDS)).text)
    assert events[-1].data["status"] == "success"
    assert sum(e.event == "token" for e in events) == 20


async def test_a_run_started_for_a_chat_deleted_after_it_was_read_is_chat_gone(
    app: Any, client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    # The window every route and the replay driver have between reading the chat and the run's
    # insert: the insert's foreign key refuses it, and that is a ChatGone (a 404 for a route),
    # not an unexpected database error (a 500, or a replay failed "on an unexpected error").
    from uuid import UUID

    from graphs.runtime import ChatGone
    from storage import agents as agents_store
    from storage import chats as chats_store
    from storage.db import connection_kwargs

    agents = (await client.get("/agents/", headers=user.headers)).json()["items"]
    chat = await client.post("/chats/", json={"agent_id": agents[0]["id"]}, headers=user.headers)
    chat_id = UUID(chat.json()["id"])
    async with await psycopg.AsyncConnection.connect(database_url, **connection_kwargs()) as conn:
        row = await chats_store.get_owned(conn, chat_id, UUID(user.id))
        agent = await agents_store.get(conn, UUID(agents[0]["id"]))
    assert row is not None and agent is not None
    deleted = await client.delete(f"/chats/{chat_id}", headers=user.headers)
    assert deleted.status_code == 204
    with pytest.raises(ChatGone):
        await app.state.switchboard.runs.start(
            chat=row, agent=agent, user_id=UUID(user.id), content="hello", profile=None
        )
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM runs WHERE chat_id = %s", (chat_id,))
        assert await cur.fetchone() == (0,)
