"""A run's stored input is read back as a tagged union, and a row that does not parse ends its
run with a clear error instead of crashing the process that claimed it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg.types.json import Jsonb

from graphs.runtime.inputs import InvalidRunInput, NativeInput, ProtocolInput, parse_input
from storage.db import connection_kwargs
from tests.conftest import User


def test_a_native_input_stored_before_the_tag_existed_reads_as_native() -> None:
    parsed = parse_input({"content": "hi", "profile": None})
    assert parsed == NativeInput(content="hi", profile=None)


def test_a_protocol_input_reads_with_its_defaults() -> None:
    parsed = parse_input({"kind": "protocol", "input": {"messages": []}, "profile": None})
    assert isinstance(parsed, ProtocolInput)
    assert parsed.stream_mode == ["values"]
    assert parsed.metadata == {}


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"kind": "protocol", "stream_mode": 5}, "protocol.stream_mode"),
        ({"kind": "native"}, "native.content"),
        ({"kind": "telepathy", "content": "hi"}, "input"),
        ({"content": "hi", "surprise": True}, "native.surprise"),
        ("not an object", "input"),
    ],
)
def test_a_malformed_input_is_refused_naming_the_problem(raw: Any, problem: str) -> None:
    with pytest.raises(InvalidRunInput) as refused:
        parse_input(raw)
    assert str(refused.value).startswith(problem)


async def test_a_claimed_run_whose_input_does_not_parse_ends_as_an_error(
    app: FastAPI, client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    agents = (await client.get("/agents/", headers=user.headers)).json()["items"]
    chat_id = (
        await client.post("/chats/", json={"agent_id": agents[0]["id"]}, headers=user.headers)
    ).json()["id"]
    # Queued for any worker, with an input no version of the server writes.
    async with await psycopg.AsyncConnection.connect(database_url, **connection_kwargs()) as conn:
        cur = await conn.execute(
            "INSERT INTO runs (chat_id, user_id, agent_id, agent_version, model_name, status,"
            " input) VALUES (%s, %s, %s, 1, 'fake:echo', 'pending', %s) RETURNING id",
            (chat_id, user.id, agents[0]["id"], Jsonb({"kind": "protocol", "stream_mode": 5})),
        )
        run_id = (await cur.fetchone())["id"]

    worker = asyncio.create_task(app.state.switchboard.runs.work(concurrency=1))
    try:
        for _ in range(300):
            run = (await client.get(f"/runs/{run_id}", headers=user.headers)).json()
            if run["status"] not in ("pending", "running"):
                break
            await asyncio.sleep(0.01)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert (run["status"], run["error"]) == ("error", "InvalidRunInput")
    # The worker lived on, and the chat is free for the next message.
    ok = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "hi"}, headers=user.headers
    )
    assert ok.json()["status"] == "success"
