"""Inputs and failures an attacker found answered with a 500 (issue 12, items 1 and 3).

``Last-Event-ID`` values that ``str.isdigit()`` accepts but ``int()`` does not, and Postgres
going away under a running app: real Postgres, the real app over ASGI, nothing of ours mocked.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.bootstrap import upgrade_database
from api.wire.sse import parse_last_event_id
from graphs.catalog import seed_agents
from storage import db
from storage.db import connection_kwargs, start_embedded
from tests.conftest import PASSWORD, User, assert_error, make_settings, running
from tests.sse import parse

# run, message (user), 5 tokens, message (agent), end
EVENTS = 9
# Each of these is no usable event id: the stream is replayed from its first event.
# "²" goes as the byte Starlette decodes (latin-1) to "²", which ``isdigit()`` accepts.
UNUSABLE: list[str | bytes] = ["9" * 5000, "²".encode("latin-1"), "²".encode(), "-1", " 3", "1e3"]
UNUSABLE_IDS = ["5000-nines", "sup2-latin1", "sup2-utf8", "-1", "space-3", "1e3"]


def test_only_a_plain_decimal_of_at_most_18_digits_is_an_event_id() -> None:
    assert parse_last_event_id("2") == 2
    assert parse_last_event_id("0") == 0
    assert parse_last_event_id("9" * 18) == 10**18 - 1
    arabic_indic_one = "\u0661"
    unusable_ids = (None, "", "9" * 19, "9" * 5000, "²", arabic_indic_one, "-1", "+1", " 3", "1e3")
    for unusable in unusable_ids:
        assert parse_last_event_id(unusable) == 0, unusable


@pytest.fixture
async def finished(client: httpx.AsyncClient, user: User, admin: User) -> dict[str, Any]:
    """A run of five tokens that has ended, in a chat of ``user``'s: its ids and the agent's."""
    agent = await client.post(
        "/agents/", json={"name": "t5", "model_name": "fake:tokens-5"}, headers=admin.headers
    )
    assert agent.status_code == 201, agent.text
    chat = await client.post("/chats/", json={"agent_id": agent.json()["id"]}, headers=user.headers)
    chat_id = chat.json()["id"]
    answer = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "go"}, headers=user.headers
    )
    assert answer.json()["status"] == "success", answer.text
    runs = (await client.get(f"/chats/{chat_id}/runs", headers=user.headers)).json()["items"]
    return {"chat_id": chat_id, "run_id": runs[0]["id"], "agent_id": agent.json()["id"]}


async def _ids(
    client: httpx.AsyncClient, url: str, headers: dict[str, Any], **params: Any
) -> list[int]:
    response = await client.get(url, headers=headers, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events, _ = parse(response.text)
    assert events[-1].event == "end"
    return [event.id for event in events]


@pytest.mark.parametrize("last_event_id", UNUSABLE, ids=UNUSABLE_IDS)
async def test_native_stream_replays_everything_for_an_unusable_last_event_id(
    client: httpx.AsyncClient, user: User, finished: dict[str, Any], last_event_id: str | bytes
) -> None:
    url = f"/runs/{finished['run_id']}/stream"
    headers = {**user.headers, "Last-Event-ID": last_event_id}
    assert await _ids(client, url, headers) == list(range(1, EVENTS + 1))


async def test_native_stream_resumes_after_a_valid_last_event_id(
    client: httpx.AsyncClient, user: User, finished: dict[str, Any]
) -> None:
    url = f"/runs/{finished['run_id']}/stream"
    assert await _ids(client, url, {**user.headers, "Last-Event-ID": "2"}) == list(
        range(3, EVENTS + 1)
    )
    assert await _ids(client, url, user.headers, last_event_id=2) == list(range(3, EVENTS + 1))
    # With both, the later id counts, whichever names it (an EventSource reconnects to the URL
    # it was opened with, and names newer events in the header).
    both = await _ids(client, url, {**user.headers, "Last-Event-ID": "7"}, last_event_id=2)
    assert both == list(range(8, EVENTS + 1))
    both = await _ids(client, url, {**user.headers, "Last-Event-ID": "2"}, last_event_id=7)
    assert both == list(range(8, EVENTS + 1))
    # An id at or beyond the run's last event: nothing else is sent again, but the stream of a
    # finished run still ends with its ``end``.
    for beyond in (str(EVENTS), str(EVENTS + 1), "9" * 18):
        assert await _ids(client, url, {**user.headers, "Last-Event-ID": beyond}) == [EVENTS]


@pytest.mark.parametrize("value", [str(10**30), str(10**18 + 1), "9" * 5000, "-1", "²"])
async def test_native_stream_rejects_an_out_of_range_last_event_id_query(
    client: httpx.AsyncClient, user: User, finished: dict[str, Any], value: str
) -> None:
    response = await client.get(
        f"/runs/{finished['run_id']}/stream", params={"last_event_id": value}, headers=user.headers
    )
    body = assert_error(response, 422, "validation_error")
    assert body["detail"][0]["loc"] == ["query", "last_event_id"]
    assert value not in response.text


@pytest.mark.parametrize("last_event_id", UNUSABLE, ids=UNUSABLE_IDS)
async def test_protocol_join_stream_replays_everything_for_an_unusable_last_event_id(
    client: httpx.AsyncClient, user: User, finished: dict[str, Any], last_event_id: str | bytes
) -> None:
    run_id = await _protocol_run(client, user, finished)
    url = f"/threads/{finished['chat_id']}/runs/{run_id}/stream"
    ids = await _ids(client, url, {**user.headers, "Last-Event-ID": last_event_id})
    assert ids == list(range(1, len(ids) + 1))
    assert len(ids) > 3


async def test_protocol_join_stream_resumes_after_a_valid_last_event_id(
    client: httpx.AsyncClient, user: User, finished: dict[str, Any]
) -> None:
    run_id = await _protocol_run(client, user, finished)
    url = f"/threads/{finished['chat_id']}/runs/{run_id}/stream"
    whole = await _ids(client, url, user.headers)
    assert whole == list(range(1, len(whole) + 1))
    assert await _ids(client, url, {**user.headers, "Last-Event-ID": "2"}) == whole[2:]


async def _protocol_run(client: httpx.AsyncClient, user: User, finished: dict[str, Any]) -> str:
    body = {
        "assistant_id": finished["agent_id"],
        "input": {"messages": [{"role": "user", "content": "hi"}]},
        "stream_mode": ["values"],
    }
    response = await client.post(
        f"/threads/{finished['chat_id']}/runs/wait", json=body, headers=user.headers
    )
    assert response.status_code == 200, response.text
    # /threads/{thread_id}/runs/{run_id}/join
    return response.headers["Location"].split("/")[4]


# Database unavailable: 503 database_unavailable with Retry-After, then recovery by itself.


async def _register(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post(
        "/auth/register", json={"name": "U", "email": "u@example.org", "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _assert_database_unavailable(response: httpx.Response) -> None:
    assert_error(response, 503, "database_unavailable")
    assert response.headers["Retry-After"] == "5"
    for leak in ("AdminShutdown", "terminating", "server closed"):
        assert leak not in response.text


@pytest.fixture
async def one_connection_app(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app of its own whose pool has one connection, trusted without a check (as one used
    within the last few seconds is), and no heartbeat that could use it meanwhile."""
    monkeypatch.setattr(db, "TRUSTED_IDLE_SECONDS", 3600.0)
    settings = make_settings(database_url, pool_min_size=1, pool_max_size=1, heartbeat_seconds=3600)
    app = create_app(settings)
    async with running(app) as client:
        yield app, client


async def test_a_pooled_connection_whose_backend_was_terminated_is_a_503_then_recovers(
    one_connection_app: tuple[FastAPI, httpx.AsyncClient], database_url: str
) -> None:
    app, client = one_connection_app
    headers = await _register(client)
    assert (await client.get("/chats/", headers=headers)).status_code == 200
    pool = app.state.switchboard.pool
    async with pool.connection() as conn:
        pid = (await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone())["pid"]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
        gone = await admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
        assert (await gone.fetchone()) == (0,)

    _assert_database_unavailable(await client.get("/chats/", headers=headers))
    # The pool dropped the dead connection and opens another: the server recovers by itself.
    recovered = await client.get("/chats/", headers=headers)
    assert recovered.status_code == 200, recovered.text


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


async def test_postgres_killed_under_a_running_app_is_a_503_then_recovers_when_back(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attacker's case: the postmaster killed (SIGKILL) under a running app."""
    monkeypatch.setattr(db, "TRUSTED_IDLE_SECONDS", 3600.0)
    server = start_embedded(data_dir)
    url = server.uri("postgres")
    await upgrade_database(url)
    async with await psycopg.AsyncConnection.connect(url, **connection_kwargs()) as conn:
        await seed_agents(conn)

    settings = make_settings(url, pool_min_size=2, pool_max_size=2, heartbeat_seconds=3600)
    app = create_app(settings)
    async with running(app) as client:
        headers = await _register(client)
        for _ in range(3):
            assert (await client.get("/chats/", headers=headers)).status_code == 200
        pool = app.state.switchboard.pool
        assert pool.get_stats()["pool_available"] == 2

        postmaster = _postmaster_pid(server.pgdata)
        os.kill(postmaster, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while db.pid_alive(postmaster):
            assert time.monotonic() < deadline, "postmaster did not die"
            await asyncio.sleep(0.05)
        # Its backends notice the postmaster's death and close their connections.
        await asyncio.sleep(1)

        # Both pooled connections are dead but trusted: each request that takes one fails.
        for _ in range(2):
            _assert_database_unavailable(await client.get("/chats/", headers=headers))

        # Nothing listens any more; once Postgres is back the pool reconnects by itself.
        await asyncio.to_thread(server.server.ensure_postgres_running)
        deadline = time.monotonic() + 60
        while True:
            response = await client.get("/chats/", headers=headers)
            if response.status_code == 200:
                break
            _assert_database_unavailable(response)
            assert time.monotonic() < deadline, "the app never recovered"
            await asyncio.sleep(0.2)
