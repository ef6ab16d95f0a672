"""A second message while a run is active: reject, enqueue, interrupt, rollback."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from storage import runs as runs_store
from tests.conftest import User, assert_error


class Chat:
    def __init__(
        self, client: httpx.AsyncClient, user: User, admin: User, agent: dict, chat_id: str
    ):
        self.client, self.user, self.admin = client, user, admin
        self.agent, self.id = agent, chat_id

    def post(self, content: str, **body: Any) -> asyncio.Task[httpx.Response]:
        return asyncio.create_task(
            self.client.post(
                f"/chats/{self.id}/messages",
                json={"content": content, **body},
                headers=self.user.headers,
            )
        )

    async def runs(self) -> list[dict[str, Any]]:
        response = await self.client.get(f"/chats/{self.id}/runs", headers=self.user.headers)
        return response.json()["items"]

    async def wait_running(self) -> dict[str, Any]:
        for _ in range(500):
            running = [r for r in await self.runs() if r["status"] == "running"]
            if running:
                return running[0]
            await asyncio.sleep(0.01)
        raise AssertionError("no run started")

    async def use_model(self, model_name: str) -> None:
        response = await self.client.put(
            f"/agents/{self.agent['id']}",
            json={"model_name": model_name},
            headers=self.admin.headers,
        )
        assert response.status_code == 200

    async def history(self) -> list[tuple[str, str]]:
        response = await self.client.get(f"/chats/{self.id}/messages", headers=self.user.headers)
        return [(m["sender"], m["content"]) for m in response.json()["items"]]


@pytest.fixture
async def chat(client: httpx.AsyncClient, user: User, admin: User) -> Chat:
    agent = (
        await client.post(
            "/agents/", json={"name": "Multi", "model_name": "fake:echo"}, headers=admin.headers
        )
    ).json()
    chat_id = (
        await client.post("/chats/", json={"agent_id": agent["id"]}, headers=user.headers)
    ).json()["id"]
    return Chat(client, user, admin, agent, chat_id)


LONG = " ".join(f"tok{i}" for i in range(20))


async def test_reject_is_the_default(chat: Chat) -> None:
    await chat.use_model("fake:tokens-20@50")
    first = chat.post("one")
    active = await chat.wait_running()
    for body in ({}, {"multitask_strategy": "reject"}):
        busy = await chat.post("two", **body)
        assert active["id"] in assert_error(busy, 409, "conflict")["detail"]
    assert (await first).json()["status"] == "success"
    assert await chat.history() == [("user", "one"), ("agent", LONG)]


async def test_enqueue_runs_after_the_active_run(chat: Chat) -> None:
    await chat.use_model("fake:tokens-20@30")
    first = chat.post("one")
    await chat.wait_running()
    second = chat.post("two", multitask_strategy="enqueue")
    # Queue order is arrival order: let "two" arrive before "three" is sent.
    for _ in range(500):
        if len(await chat.runs()) == 2:
            break
        await asyncio.sleep(0.01)
    third = chat.post("three", multitask_strategy="enqueue")
    answers = [(await t).json() for t in (first, second, third)]
    assert [a["status"] for a in answers] == ["success"] * 3
    assert await chat.history() == [
        ("user", "one"), ("agent", LONG),
        ("user", "two"), ("agent", LONG),
        ("user", "three"), ("agent", LONG),
    ]  # fmt: skip
    runs = sorted(await chat.runs(), key=lambda r: r["created_at"])
    assert [r["multitask_strategy"] for r in runs] == ["reject", "enqueue", "enqueue"]
    # Strictly one after the other.
    assert runs[0]["ended_at"] <= runs[1]["started_at"]
    assert runs[1]["ended_at"] <= runs[2]["started_at"]


async def test_interrupt_stops_the_active_run_and_keeps_what_it_wrote(chat: Chat) -> None:
    await chat.post("zero")
    await chat.use_model("fake:tokens-200@20")
    first = chat.post("one")
    active = await chat.wait_running()
    await chat.use_model("fake:echo")
    second = await chat.post("two", multitask_strategy="interrupt")
    assert second.status_code == 201
    assert second.json()["messages"][-1]["content"] == "You said: two"
    assert (await first).json()["status"] == "interrupted"
    run = (await chat.client.get(f"/runs/{active['id']}", headers=chat.user.headers)).json()
    assert run["status"] == "interrupted"
    # The interrupted run's checkpoint (its user message) stays; its partial answer never was.
    assert await chat.history() == [
        ("user", "zero"), ("agent", "You said: zero"),
        ("user", "one"),
        ("user", "two"), ("agent", "You said: two"),
    ]  # fmt: skip


async def test_rollback_stops_the_active_run_and_removes_what_it_wrote(chat: Chat) -> None:
    await chat.post("zero")
    await chat.use_model("fake:tokens-200@20")
    first = chat.post("one")
    await chat.wait_running()
    await chat.use_model("fake:echo")
    second = await chat.post("two", multitask_strategy="rollback")
    assert second.json()["status"] == "success"
    assert (await first).json()["status"] == "interrupted"
    assert await chat.history() == [
        ("user", "zero"), ("agent", "You said: zero"),
        ("user", "two"), ("agent", "You said: two"),
    ]  # fmt: skip
    chat_row = (await chat.client.get(f"/chats/{chat.id}", headers=chat.user.headers)).json()
    assert chat_row["message_count"] == 4


async def test_unknown_strategy_is_422(chat: Chat) -> None:
    response = await chat.post("x", multitask_strategy="shove")
    assert_error(response, 422, "validation_error")
    assert await chat.history() == []


async def test_reject_holds_between_a_queued_and_a_starting_run(
    client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    """A queue-only API and an executing one checking "is the chat free?" at the same moment:
    exactly one of them may take the chat, every time."""
    agents = (await client.get("/agents/", headers=user.headers)).json()["items"]
    connections = [
        await psycopg.AsyncConnection.connect(database_url, autocommit=True, row_factory=dict_row)
        for _ in range(3)
    ]
    try:
        for _ in range(40):
            chat = (
                await client.post(
                    "/chats/", json={"agent_id": agents[0]["id"]}, headers=user.headers
                )
            ).json()
            fields = {
                "chat_id": chat["id"], "user_id": user.id, "agent_id": agents[0]["id"],
                "agent_version": 1, "model_name": "fake:echo", "multitask_strategy": "reject",
                "input": Jsonb({"content": "x"}),
            }  # fmt: skip
            results = await asyncio.gather(
                runs_store.insert_starting(connections[0], queue=False, **fields, worker_id="a:1"),
                runs_store.insert_pending(connections[1], if_free=True, **fields, worker_id=None),
                runs_store.insert_starting(connections[2], queue=False, **fields, worker_id="b:2"),
            )
            assert sum(r is not None for r in results) == 1
    finally:
        for conn in connections:
            await conn.close()


async def test_message_count_matches_the_thread_after_every_kind_of_run(
    chat: Chat, app: Any
) -> None:
    """The count is kept as runs stream; whatever happened, it equals the thread's length."""
    runs = app.state.switchboard.runs

    async def consistent() -> None:
        row = (await chat.client.get(f"/chats/{chat.id}", headers=chat.user.headers)).json()
        assert row["message_count"] == len(await runs.threads.messages(chat.id))

    assert (await chat.post("plain")).json()["status"] == "success"
    await consistent()
    await chat.use_model("fake:tokens-200@20")
    first = chat.post("slow")
    await chat.wait_running()
    second = await chat.post("cut in", multitask_strategy="interrupt")
    assert (await first).json()["status"] == "interrupted"
    await consistent()
    first = chat.post("slow again")
    await chat.wait_running()
    await chat.use_model("fake:echo")
    await chat.post("undo", multitask_strategy="rollback")
    await first
    await consistent()
    assert second.json()["status"] == "success"
    tools = await chat.client.put(
        f"/agents/{chat.agent['id']}",
        json={"model_name": "fake:tools", "tools_enabled": ["calculator"]},
        headers=chat.admin.headers,
    )
    assert tools.status_code == 200
    before = len(await runs.threads.messages(chat.id))
    assert (await chat.post('{"expression": "2+3"}')).json()["status"] == "success"
    await consistent()
    # A tool round adds four: the message, the call, the result, the answer.
    assert len(await runs.threads.messages(chat.id)) == before + 4


async def test_queue_order_is_the_order_runs_got_the_chat_lock(
    client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    """A run that began its transaction first but waited for the chat's lock is queued after
    the run that held the lock: workers claim in the order runs were actually queued."""
    agents = (await client.get("/agents/", headers=user.headers)).json()["items"]
    chat = (
        await client.post("/chats/", json={"agent_id": agents[0]["id"]}, headers=user.headers)
    ).json()
    fields = {
        "chat_id": chat["id"], "user_id": user.id, "agent_id": agents[0]["id"],
        "agent_version": 1, "model_name": "fake:echo", "multitask_strategy": "enqueue",
        "worker_id": None,
    }  # fmt: skip
    early, late = [
        await psycopg.AsyncConnection.connect(database_url, autocommit=True, row_factory=dict_row)
        for _ in range(2)
    ]
    try:
        async with early.transaction():
            # ``early``'s transaction (and its now()) begins before ``late`` queues its run.
            await early.execute("SELECT 1")
            await asyncio.sleep(0.05)
            queued_first = await runs_store.insert_pending(
                late, **fields, input=Jsonb({"content": "first"})
            )
            queued_second = await runs_store.insert_pending(
                early, **fields, input=Jsonb({"content": "second"})
            )
        assert queued_first is not None and queued_second is not None
        assert queued_first["created_at"] < queued_second["created_at"]
        claimed = [await runs_store.claim_next(late, "w:1")]
        async with late.transaction():
            await late.execute(
                "UPDATE runs SET status = 'success' WHERE id = %s", (claimed[0]["id"],)
            )
        claimed.append(await runs_store.claim_next(late, "w:1"))
        assert [run["input"]["content"] for run in claimed] == ["first", "second"]
    finally:
        await early.close()
        await late.close()
