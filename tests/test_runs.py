"""Runs that end badly: cancelled by the user, or orphaned by a process that died."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI

from storage.db import connection_kwargs
from tests.conftest import PASSWORD, User, assert_error
from tests.servers import Server, clean_env
from tests.sse import parse


async def _agent(client: httpx.AsyncClient, admin: User, model_name: str) -> dict[str, Any]:
    response = await client.post(
        "/agents/", json={"name": model_name, "model_name": model_name}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _wait_running(client: httpx.AsyncClient, user: User, chat_id: str) -> dict[str, Any]:
    for _ in range(500):
        runs = (await client.get(f"/chats/{chat_id}/runs", headers=user.headers)).json()
        if runs["items"]:
            return runs["items"][0]
        await asyncio.sleep(0.01)
    raise AssertionError("no run started")


async def test_cancel_a_streaming_run(client: httpx.AsyncClient, user: User, admin: User) -> None:
    agent = await _agent(client, admin, "fake:tokens-200@20")
    chat_id = (
        await client.post("/chats/", json={"agent_id": agent["id"]}, headers=user.headers)
    ).json()["id"]
    url = f"/chats/{chat_id}/messages"
    answer = asyncio.create_task(client.post(url, json={"content": "go"}, headers=user.headers))
    run = await _wait_running(client, user, chat_id)
    await asyncio.sleep(0.2)  # some tokens out, far from all 200 (4 s)

    cancel = await client.post(f"/runs/{run['id']}/cancel", headers=user.headers)
    assert cancel.status_code == 200
    assert cancel.json() == {"run_id": run["id"], "status": "cancelled", "cancelled": True}
    body = (await answer).json()
    assert body["status"] == "cancelled"
    assert [m["sender"] for m in body["messages"]] == ["user"]

    replay = parse((await client.get(f"/runs/{run['id']}/stream", headers=user.headers)).text)[0]
    tokens = [e for e in replay if e.event == "token"]
    assert 0 < len(tokens) < 200
    assert replay[-1].event == "end"
    assert replay[-1].data["status"] == "cancelled"
    stored = (await client.get(f"/runs/{run['id']}", headers=user.headers)).json()
    assert stored["status"] == "cancelled"
    assert stored["ended_at"] is not None

    again = await client.post(f"/runs/{run['id']}/cancel", headers=user.headers)
    assert again.json() == {"run_id": run["id"], "status": "cancelled", "cancelled": False}

    # The chat is usable: the next message gets a full answer.
    await client.put(
        f"/agents/{agent['id']}", json={"model_name": "fake:echo"}, headers=admin.headers
    )
    nxt = await client.post(url, json={"content": "after"}, headers=user.headers)
    assert nxt.json()["status"] == "success"
    assert nxt.json()["messages"][-1]["content"] == "You said: after"


async def test_cancel_needs_ownership(
    client: httpx.AsyncClient, user: User, other_user: User, seeded_agents: dict[str, Any]
) -> None:
    chat_id = (
        await client.post(
            "/chats/", json={"agent_id": seeded_agents["assistant"]["id"]}, headers=user.headers
        )
    ).json()["id"]
    done = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "hi"}, headers=user.headers
    )
    run_id = done.json()["run_id"]
    assert_error(await client.post(f"/runs/{run_id}/cancel", headers=other_user.headers), 404)
    finished = await client.post(f"/runs/{run_id}/cancel", headers=user.headers)
    assert finished.json() == {"run_id": run_id, "status": "success", "cancelled": False}


async def test_runs_of_a_dead_process_are_interrupted_and_free_their_chat(
    app: FastAPI, client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    agents = (await client.get("/agents/", headers=user.headers)).json()["items"]
    chat_id = (
        await client.post("/chats/", json={"agent_id": agents[0]["id"]}, headers=user.headers)
    ).json()["id"]
    # A run recorded by a process of this host that no longer exists (pid far above pid_max).
    async with await psycopg.AsyncConnection.connect(database_url, **connection_kwargs()) as conn:
        cur = await conn.execute(
            "INSERT INTO runs (chat_id, user_id, agent_id, agent_version, model_name, status,"
            " worker_id, started_at, heartbeat_at) VALUES (%s, %s, %s, 1, 'fake:echo',"
            " 'running', %s, now(), now()) RETURNING id",
            (chat_id, user.id, agents[0]["id"], f"{socket.gethostname()}:999999999"),
        )
        orphan = (await cur.fetchone())["id"]

    busy = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "hi"}, headers=user.headers
    )
    assert_error(busy, 409, "conflict")
    assert await app.state.switchboard.runs.recover() == [orphan]
    run = (await client.get(f"/runs/{orphan}", headers=user.headers)).json()
    assert run["status"] == "interrupted"
    ok = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "hi"}, headers=user.headers
    )
    assert ok.json()["status"] == "success"


def test_kill_9_mid_stream_then_restart(data_dir: Path) -> None:
    env = clean_env(
        SWITCHBOARD_DATA_DIR=str(data_dir),
        SWITCHBOARD_ADMIN_EMAIL="root@example.org",
        SWITCHBOARD_ADMIN_PASSWORD="root-password",
    )
    server = Server(data_dir, env)
    admin = httpx.post(
        f"{server.url}/auth/login", json={"email": "root@example.org", "password": "root-password"}
    ).json()
    user = httpx.post(
        f"{server.url}/auth/register",
        json={"name": "U", "email": "u@example.org", "password": PASSWORD},
    ).json()
    a_headers = {"Authorization": f"Bearer {admin['access_token']}"}
    u_headers = {"Authorization": f"Bearer {user['access_token']}"}
    agent = httpx.post(
        f"{server.url}/agents/",
        json={"name": "Slow", "model_name": "fake:tokens-200@50"},
        headers=a_headers,
    ).json()
    chat = httpx.post(
        f"{server.url}/chats/", json={"agent_id": agent["id"]}, headers=u_headers
    ).json()
    seen: list[str] = []
    with httpx.stream(
        "POST",
        f"{server.url}/chats/{chat['id']}/messages",
        json={"content": "a long answer please"},
        headers={**u_headers, "Accept": "text/event-stream"},
        timeout=30,
    ) as response:
        for line in response.iter_lines():
            if line.startswith("event: token"):
                seen.append(line)
                if len(seen) == 5:
                    server.signal(signal.SIGKILL)
                    break
    run_id = response.headers["location"].split("/")[2]

    server = Server(data_dir, env)
    run = httpx.get(f"{server.url}/runs/{run_id}", headers=u_headers).json()
    assert run["status"] == "interrupted"
    messages = httpx.get(f"{server.url}/chats/{chat['id']}/messages", headers=u_headers).json()
    # The user's message was checkpointed before the model started; the partial answer was not.
    assert [(m["sender"], m["content"]) for m in messages["items"]] == [
        ("user", "a long answer please")
    ]
    httpx.put(
        f"{server.url}/agents/{agent['id']}", json={"model_name": "fake:echo"}, headers=a_headers
    )
    nxt = httpx.post(
        f"{server.url}/chats/{chat['id']}/messages",
        json={"content": "again"},
        headers=u_headers,
        timeout=30,
    )
    assert nxt.status_code == 201
    assert nxt.json()["messages"][-1]["content"] == "You said: again"
    server.stop_gracefully(signal.SIGTERM)


async def test_cancel_during_a_tool_call_leaves_no_dangling_tool_call(
    app: FastAPI,
    client: httpx.AsyncClient,
    user: User,
    admin: User,
    slow_tool: asyncio.Event,
) -> None:
    started = slow_tool
    agent = (
        await client.post(
            "/agents/",
            json={
                "name": "Slow tools",
                "model_name": "fake:tools",
                "tools_enabled": ["slow_lookup"],
            },
            headers=admin.headers,
        )
    ).json()
    chat_id = (
        await client.post("/chats/", json={"agent_id": agent["id"]}, headers=user.headers)
    ).json()["id"]
    url = f"/chats/{chat_id}/messages"
    answer = asyncio.create_task(client.post(url, json={"content": "q"}, headers=user.headers))
    await asyncio.wait_for(started.wait(), timeout=10)
    run = await _wait_running(client, user, chat_id)
    cancel = await client.post(f"/runs/{run['id']}/cancel", headers=user.headers)
    assert cancel.json()["status"] == "cancelled"
    assert (await answer).json()["status"] == "cancelled"
    history = (await client.get(url, headers=user.headers)).json()["items"]
    assert [m["sender"] for m in history] == ["user", "agent"]  # the call, with no result
    call_id = history[1]["metadata"]["tool_calls"][0]["id"]

    await client.put(
        f"/agents/{agent['id']}", json={"model_name": "fake:echo"}, headers=admin.headers
    )
    nxt = (await client.post(url, json={"content": "next"}, headers=user.headers)).json()
    assert nxt["status"] == "success"
    assert [(m["sender"], m["content"]) for m in nxt["messages"]] == [
        ("tool", "Error: this tool call was stopped before it returned a result."),
        ("user", "next"),
        ("agent", "You said: next"),
    ]
    assert nxt["messages"][0]["metadata"] == {
        "tool_call_id": call_id,
        "name": "slow_lookup",
        "is_error": True,
    }
    history = (await client.get(url, headers=user.headers)).json()["items"]
    assert [m["sender"] for m in history] == ["user", "agent", "tool", "user", "agent"]
