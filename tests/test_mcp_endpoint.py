"""``/mcp`` through the official MCP client (``mcp`` on PyPI): the agents as tools, a call as a
run on the caller's thread, the thread continued, refusals as tool errors, the bearer token.

Over the ASGI app (both eras of the protocol: the initialize handshake and 2026-07-28's
per-request envelope) and over a started server, which is also stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import mcp_types as types
import psycopg
import pytest
from fastapi import FastAPI
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from api.app import create_app
from api.services import mcp as mcp_service
from tests.conftest import (
    JWT_SECRET,
    PASSWORD,
    RegisterFn,
    User,
    assert_error,
    make_settings,
    running,
)
from tests.servers import beside_the_tests

BASE = "http://switchboard"
# What the SDK's client sends with a request (and a server must be sent).
ACCEPT = {"Accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}


@contextlib.asynccontextmanager
async def mcp_session(
    app: FastAPI, headers: dict[str, str], url: str = BASE
) -> AsyncIterator[ClientSession]:
    """The official client's session with ``/mcp``, initialized (the handshake era): over the
    ASGI app, or over HTTP to a started server at ``url``."""
    transport = httpx2.ASGITransport(app=app) if url == BASE else None
    async with (
        httpx2.AsyncClient(transport=transport, base_url=url, headers=headers) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def _texts(result: types.CallToolResult) -> list[str]:
    return [part.text for part in result.content if isinstance(part, types.TextContent)]


async def _messages(client: httpx.AsyncClient, user: User, thread_id: str) -> list[list[str]]:
    response = await client.get(f"/chats/{thread_id}/messages", headers=user.headers)
    assert response.status_code == 200, response.text
    return [[m["sender"], m["content"]] for m in response.json()["items"]]


async def _counts(database_url: str) -> tuple[int, int]:
    async with await psycopg.AsyncConnection.connect(database_url) as db:
        cursor = await db.execute(
            "SELECT (SELECT count(*) FROM chats), (SELECT count(*) FROM runs)"
        )
        row = await cursor.fetchone()
    assert row is not None
    return row[0], row[1]


async def _agent(client: httpx.AsyncClient, admin: User, name: str, model: str) -> dict[str, Any]:
    response = await client.post(
        "/agents/",
        json={"name": name, "description": f"{name} answers.", "model_name": model},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_the_tools_are_the_agents_the_user_may_use(
    app: FastAPI, client: httpx.AsyncClient, user: User, admin: User
) -> None:
    created = await _agent(client, admin, "Zeta Helper", "fake:echo")
    listed = (await client.get("/agents/", params={"limit": 100}, headers=user.headers)).json()
    retired = next(agent for agent in listed["items"] if agent["slug"] == "marketing")
    retiring = await client.delete(f"/agents/{retired['id']}", headers=admin.headers)
    assert retiring.status_code == 204
    agents = (await client.get("/agents/", params={"limit": 100}, headers=user.headers)).json()

    async with mcp_session(app, user.headers) as session:
        tools = await session.list_tools()
    assert tools.next_cursor is None
    assert [(t.name, t.title, t.description) for t in tools.tools] == [
        (a["slug"], a["name"], a["description"]) for a in agents["items"]
    ]
    names = [tool.name for tool in tools.tools]
    assert names == [
        "assistant", "legal-research", "personal-finance", "software-engineer", "zeta-helper"
    ]  # fmt: skip
    assert created["slug"] == "zeta-helper"
    assert all(t.input_schema == mcp_service.INPUT_SCHEMA for t in tools.tools)
    assert all(t.output_schema == mcp_service.OUTPUT_SCHEMA for t in tools.tools)
    # Every name is a valid MCP tool name (letters, digits, "_", "-", "."; 1 to 128).
    assert all(1 <= len(n) <= 128 and n.replace("-", "").isalnum() for n in names)


async def test_tools_come_in_pages(
    app: FastAPI, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mcp_service, "TOOLS_PER_PAGE", 2)
    pages: list[list[str]] = []
    async with mcp_session(app, user.headers) as session:
        cursor = None
        while True:
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            pages.append([tool.name for tool in page.tools])
            cursor = page.next_cursor
            if cursor is None:
                break
        with pytest.raises(MCPError) as refused:
            await session.list_tools(params=types.PaginatedRequestParams(cursor="-1"))
    assert pages == [
        ["assistant", "legal-research"], ["marketing", "personal-finance"], ["software-engineer"]
    ]  # fmt: skip
    assert (refused.value.code, refused.value.message) == (types.INVALID_PARAMS, "Invalid cursor")


async def test_a_call_answers_on_a_new_thread_that_the_next_call_continues(
    app: FastAPI, client: httpx.AsyncClient, user: User
) -> None:
    async with mcp_session(app, user.headers) as session:
        first = await session.call_tool("assistant", {"message": "hello there"})
        assert first.is_error is False
        assert first.structured_content is not None
        thread_id = first.structured_content["thread_id"]
        assert _texts(first) == ["You said: hello there", f"thread_id: {thread_id}"]
        second = await session.call_tool(
            "assistant", {"message": "and again", "thread_id": thread_id}
        )
    assert second.is_error is False
    assert second.structured_content is not None
    assert _texts(second) == ["You said: and again", f"thread_id: {thread_id}"]
    assert second.structured_content["thread_id"] == thread_id

    # The thread is the user's chat with the agent: both turns, in order, in its history.
    chat = (await client.get(f"/chats/{thread_id}", headers=user.headers)).json()
    seeded = (await client.get("/agents/", headers=user.headers)).json()["items"]
    assert chat["agent_id"] == next(a["id"] for a in seeded if a["slug"] == "assistant")
    assert await _messages(client, user, thread_id) == [
        ["user", "hello there"],
        ["agent", "You said: hello there"],
        ["user", "and again"],
        ["agent", "You said: and again"],
    ]
    runs = (await client.get(f"/chats/{thread_id}/runs", headers=user.headers)).json()["items"]
    assert sorted((r["id"], r["status"]) for r in runs) == sorted(
        [
            (first.structured_content["run_id"], "success"),
            (second.structured_content["run_id"], "success"),
        ]
    )
    # The same thread through the Agent Protocol: the second run saw the first's messages.
    state = (await client.get(f"/threads/{thread_id}/state", headers=user.headers)).json()
    assert [m["content"] for m in state["values"]["messages"]] == [
        "hello there", "You said: hello there", "and again", "You said: and again"
    ]  # fmt: skip


async def test_a_thread_of_the_native_api_is_continued_too(
    app: FastAPI, client: httpx.AsyncClient, user: User, seeded_agents: dict[str, Any]
) -> None:
    chat = await client.post(
        "/chats/", json={"agent_id": seeded_agents["assistant"]["id"]}, headers=user.headers
    )
    thread_id = chat.json()["id"]
    sent = await client.post(
        f"/chats/{thread_id}/messages", json={"content": "first"}, headers=user.headers
    )
    assert sent.status_code == 201, sent.text
    async with mcp_session(app, user.headers) as session:
        result = await session.call_tool("assistant", {"message": "second", "thread_id": thread_id})
    assert _texts(result) == ["You said: second", f"thread_id: {thread_id}"]
    assert [m[1] for m in await _messages(client, user, thread_id)] == [
        "first", "You said: first", "second", "You said: second"
    ]  # fmt: skip


async def test_another_users_thread_is_a_tool_error_that_reveals_and_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, user: User, other_user: User, database_url: str
) -> None:
    async with mcp_session(app, user.headers) as session:
        mine = await session.call_tool("assistant", {"message": "private"})
    assert mine.structured_content is not None
    thread_id = mine.structured_content["thread_id"]
    before = (await _messages(client, user, thread_id), await _counts(database_url))

    missing = str(uuid.uuid4())
    async with mcp_session(app, other_user.headers) as session:
        theirs = await session.call_tool("assistant", {"message": "hi", "thread_id": thread_id})
        nothing = await session.call_tool("assistant", {"message": "hi", "thread_id": missing})
    assert theirs.is_error is True
    assert theirs.structured_content is None
    assert _texts(theirs) == [
        f"Thread {thread_id} not found: pass a thread_id an earlier call answered"
    ]
    # Word for word what a thread that does not exist gets.
    assert _texts(nothing) == [_texts(theirs)[0].replace(thread_id, missing)]
    assert (await _messages(client, user, thread_id), await _counts(database_url)) == before


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({}, "Invalid arguments: message: Field required"),
        ({"message": ""}, "Invalid arguments: message: String should have at least 1 character"),
        ({"message": "   "}, "Invalid arguments: message: Value error, must not be blank"),
        ({"message": "a\x00b"}, "Invalid arguments: message: Value error, must not contain NUL "
         "characters"),
        ({"message": "x" * 32_001}, "Invalid arguments: message: String should have at most "
         "32000 characters"),
        ({"message": 7}, "Invalid arguments: message: Input should be a valid string"),
        ({"message": "hi", "thread_id": "nope"}, "Invalid arguments: thread_id: Input should be "
         "a valid UUID, invalid character: found `n` at 0"),
        ({"message": "hi", "threadId": str(uuid.uuid4())}, "Invalid arguments: threadId: Extra "
         "inputs are not permitted"),
    ],
)  # fmt: skip
async def test_bad_arguments_are_tool_errors_and_create_nothing(
    app: FastAPI, user: User, database_url: str, arguments: dict[str, Any], error: str
) -> None:
    async with mcp_session(app, user.headers) as session:
        result = await session.call_tool("assistant", arguments)
    assert (result.is_error, _texts(result), result.structured_content) == (True, [error], None)
    assert await _counts(database_url) == (0, 0)


async def test_an_unknown_or_retired_tool_is_a_protocol_error(
    app: FastAPI, client: httpx.AsyncClient, user: User, admin: User, database_url: str
) -> None:
    retired = await _agent(client, admin, "Retired One", "fake:echo")
    retiring = await client.delete(f"/agents/{retired['id']}", headers=admin.headers)
    assert retiring.status_code == 204
    async with mcp_session(app, user.headers) as session:
        for name in ("no-such-agent", "retired-one", retired["id"]):
            with pytest.raises(MCPError) as refused:
                await session.call_tool(name, {"message": "hi"})
            assert refused.value.code == types.INVALID_PARAMS
            assert refused.value.message == f"Unknown tool: {name}"
    assert await _counts(database_url) == (0, 0)


async def test_a_busy_thread_is_a_tool_error_and_its_run_goes_on(
    app: FastAPI, client: httpx.AsyncClient, user: User, admin: User
) -> None:
    slow = await _agent(client, admin, "Slow", "fake:tokens-200@20")
    thread = (await client.post("/threads", json={}, headers=user.headers)).json()
    run = await client.post(
        f"/threads/{thread['thread_id']}/runs",
        json={"assistant_id": "slow", "input": {"messages": [{"role": "user", "content": "go"}]}},
        headers=user.headers,
    )
    assert run.status_code == 200, run.text
    run_id = run.json()["run_id"]
    async with mcp_session(app, user.headers) as session:
        busy = await session.call_tool(
            slow["slug"], {"message": "me too", "thread_id": thread["thread_id"]}
        )
    assert busy.is_error is True
    assert _texts(busy) == [
        f"Thread {thread['thread_id']} is busy with another run ({run_id}); wait for it to end, "
        "or leave out thread_id to start a new conversation"
    ]
    runs = (await client.get(f"/threads/{thread['thread_id']}/runs", headers=user.headers)).json()
    assert [(r["run_id"], r["status"]) for r in runs] == [(run_id, "running")]
    cancelled = await client.post(
        f"/threads/{thread['thread_id']}/runs/{run_id}/cancel?wait=true", headers=user.headers
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "interrupted"


async def test_a_failed_run_is_a_tool_error(
    app: FastAPI, client: httpx.AsyncClient, user: User, admin: User
) -> None:
    # No OpenAI key in the tests' settings: the model's first call fails (MissingKey).
    await _agent(client, admin, "Keyless", "openai:gpt-4o-mini")
    async with mcp_session(app, user.headers) as session:
        failed = await session.call_tool("keyless", {"message": "hi"})
    assert failed.is_error is True
    assert _texts(failed) == ["The agent could not answer (MissingKey). Try again."]
    chats = (await client.get("/chats/", headers=user.headers)).json()["items"]
    runs = (await client.get(f"/chats/{chats[0]['id']}/runs", headers=user.headers)).json()
    assert [r["status"] for r in runs["items"]] == ["error"]


async def test_an_agent_that_pauses_for_input_is_a_tool_error_naming_its_question(
    app: FastAPI, client: httpx.AsyncClient, user: User, admin: User
) -> None:
    asker = await client.post(
        "/agents/",
        json={"name": "Asker", "model_name": "fake:tools", "tools_enabled": ["ask_human"]},
        headers=admin.headers,
    )
    assert asker.status_code == 201, asker.text
    async with mcp_session(app, user.headers) as session:
        paused = await session.call_tool("asker", {"message": "May I deploy?"})
    thread_id = (await client.get("/chats/", headers=user.headers)).json()["items"][0]["id"]
    assert paused.is_error is True
    assert _texts(paused) == [
        f"The agent paused on thread {thread_id} and asks: May I deploy?\n(Answer it with a "
        "run of the Agent Protocol on that thread whose command resumes it.)"
    ]
    thread = (await client.get(f"/threads/{thread_id}", headers=user.headers)).json()
    assert thread["status"] == "interrupted"


async def test_database_and_unexpected_failures_say_nothing_of_their_exception(
    app: FastAPI, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: Postgres refusing the agent queries, then a bug in them. The SDK would
    send an exception's text as the error's message; none of it leaves the server."""

    async def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise psycopg.OperationalError("connection to server at 10.1.2.3 failed: secret")

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internal detail: secret")

    async with mcp_session(app, user.headers) as session:
        for fault, tool_error, list_error in [
            (unavailable, "The database is unavailable; retry shortly",
             "The database is unavailable; retry shortly"),
            (broken, "The agent could not answer. Try again.",
             "The tools could not be listed. Try again."),
        ]:  # fmt: skip
            monkeypatch.setattr(mcp_service.agents_store, "get_by_slug", fault)
            monkeypatch.setattr(mcp_service.agents_store, "list_page", fault)
            called = await session.call_tool("assistant", {"message": "hi"})
            assert (called.is_error, _texts(called)) == (True, [tool_error])
            with pytest.raises(MCPError) as listed:
                await session.list_tools()
            assert (listed.value.code, listed.value.message) == (types.INTERNAL_ERROR, list_error)
            assert listed.value.data is None


async def test_the_2026_protocol_lists_and_calls_the_same_tools(
    app: FastAPI, client: httpx.AsyncClient, user: User
) -> None:
    """``Client`` (auto mode) finds the server speaks 2026-07-28, with no initialize and the
    token on every request."""
    async with (
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url=BASE, headers=user.headers
        ) as http,
        Client(streamable_http_client(f"{BASE}/mcp", http_client=http)) as mcp_client,
    ):
        assert mcp_client.protocol_version == "2026-07-28"
        tools = await mcp_client.list_tools()
        first = await mcp_client.call_tool("software-engineer", {"message": "review this"})
        assert first.structured_content is not None
        thread_id = first.structured_content["thread_id"]
        second = await mcp_client.call_tool(
            "software-engineer", {"message": "thanks", "thread_id": thread_id}
        )
    assert [tool.name for tool in tools.tools] == [
        "assistant", "legal-research", "marketing", "personal-finance", "software-engineer"
    ]  # fmt: skip
    assert _texts(first) == ["You said: review this", f"thread_id: {thread_id}"]
    assert _texts(second) == ["You said: thanks", f"thread_id: {thread_id}"]
    assert len(await _messages(client, user, thread_id)) == 4


async def test_without_a_valid_token_it_is_a_401_before_any_mcp(
    app: FastAPI, client: httpx.AsyncClient, user: User, register: RegisterFn, database_url: str
) -> None:
    gone = await register(name="Gone")
    deleted = await client.request(
        "DELETE", "/users/me", json={"password": PASSWORD}, headers=gone.headers
    )
    assert deleted.status_code == 204
    for headers, detail in [
        ({}, "Not authenticated"),
        ({"Authorization": "Bearer not-a-token"}, "Invalid or expired token"),
        ({"Authorization": f"Basic {user.access_token}"}, "Not authenticated"),
        # A refresh token is no access token.
        ({"Authorization": f"Bearer {user.refresh_token}"}, "Invalid or expired token"),
        (gone.headers, "Invalid or expired token"),
    ]:
        response = await client.post("/mcp", json=INITIALIZE, headers={**ACCEPT, **headers})
        assert assert_error(response, 401, "unauthorized")["detail"] == detail
        assert response.headers["www-authenticate"] == "Bearer"
    # The official client meets the same 401, and gets no further.
    statuses: list[int] = []

    async def record(response: httpx2.Response) -> None:
        statuses.append(response.status_code)

    with pytest.raises(ExceptionGroup) as refused:
        async with (
            httpx2.AsyncClient(
                transport=httpx2.ASGITransport(app=app),
                base_url=BASE,
                headers={"Authorization": "Bearer not-a-token"},
                event_hooks={"response": [record]},
            ) as http,
            streamable_http_client(f"{BASE}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
    assert statuses == [401]
    assert refused.group_contains(MCPError)
    assert await _counts(database_url) == (0, 0)


async def test_only_post_is_served(client: httpx.AsyncClient, user: User) -> None:
    """Stateless: no stream to GET, no session to DELETE (405s the transport allows)."""
    for method in ("GET", "DELETE", "PUT"):
        response = await client.request(method, "/mcp", headers={**ACCEPT, **user.headers})
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "POST"
    response = await client.post("/mcp", json=INITIALIZE, headers={**ACCEPT, **user.headers})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["result"]["serverInfo"]["name"] == "switchboard"
    # No session: nothing for a replica to share.
    assert "mcp-session-id" not in response.headers


async def test_over_a_started_server_which_then_stops_cleanly(
    database_url: str, client: httpx.AsyncClient, user: User, app: FastAPI
) -> None:
    with beside_the_tests(database_url, JWT_SECRET) as server:
        async with mcp_session(app, user.headers, url=server.url) as session:
            tools = await session.list_tools()
            answer = await session.call_tool("assistant", {"message": "over the wire"})
        assert len(tools.tools) == 5
        assert answer.structured_content is not None
        assert _texts(answer)[0] == "You said: over the wire"
        server.stop_gracefully(signal.SIGTERM)
    thread_id = answer.structured_content["thread_id"]
    assert [m[1] for m in await _messages(client, user, thread_id)] == [
        "over the wire", "You said: over the wire"
    ]  # fmt: skip


async def test_a_call_in_flight_at_shutdown_is_answered_before_the_endpoint_stops(
    database_url: str, user: User, admin: User, client: httpx.AsyncClient
) -> None:
    """The app's lifespan ends while a tool call waits for its run: the runtime drains (with
    no grace period here, it interrupts the run at once), the call answers that, and only then
    does the MCP endpoint stop."""
    await _agent(client, admin, "Slow", "fake:tokens-200@20")
    other = create_app(make_settings(database_url, shutdown_grace_seconds=0))
    call_body = {
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "slow", "arguments": {"message": "long"}},
    }  # fmt: skip
    headers = {**ACCEPT, **user.headers, "MCP-Protocol-Version": "2025-11-25"}
    async with running(other) as http:
        call = asyncio.create_task(http.post("/mcp", json=call_body, headers=headers))
        chats: list[Any] = []
        while not chats:
            assert not call.done(), call
            await asyncio.sleep(0.05)
            chats = (await http.get("/chats/", headers=user.headers)).json()["items"]
    answer = await call
    assert answer.status_code == 200, answer.text
    thread_id = chats[0]["id"]
    assert answer.json()["result"] == {
        "content": [
            {"type": "text", "text": f"The run on thread {thread_id} was stopped before the "
             "agent answered"}
        ],
        "isError": True,
    }  # fmt: skip
    assert not other.state.switchboard.mcp.running
    runs = (await client.get(f"/chats/{thread_id}/runs", headers=user.headers)).json()["items"]
    assert [run["status"] for run in runs] == ["interrupted"]
