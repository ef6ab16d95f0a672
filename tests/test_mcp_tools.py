"""MCP tools: Switchboard as an MCP client of real MCP servers (the SDK's ``MCPServer``, in
tests/mcp_server_fixture.py) over streamable HTTP on a free port and over stdio; admins
register them, agents enable their tools, runs call them."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from tests.conftest import User, assert_error, make_settings, running
from tests.servers import free_port
from tools import mcp as mcp_tools

FIXTURE = str(Path(__file__).with_name("mcp_server_fixture.py"))
TOKEN = "fixture-token-" + uuid.uuid4().hex
ADD_SCHEMA = {
    "type": "object",
    "properties": {"a": {"title": "A", "type": "integer"}, "b": {"title": "B", "type": "integer"}},
    "required": ["a", "b"],
    "title": "addArguments",
}
GETENV_SCHEMA = {
    "type": "object",
    "properties": {"name": {"title": "Name", "type": "string"}},
    "required": ["name"],
    "title": "getenvArguments",
}
NAP_SCHEMA = {
    "type": "object",
    "properties": {"seconds": {"title": "Seconds", "type": "number"}},
    "required": ["seconds"],
    "title": "napArguments",
}
SHOUT_SCHEMA = {
    "type": "object",
    "properties": {"text": {"title": "Text", "type": "string"}},
    "required": ["text"],
    "title": "shoutArguments",
}


def tools_of(server: str) -> list[dict[str, Any]]:
    """The fixture's tools as ``/mcp-servers`` shows them for a server named ``server``."""
    return [
        {
            "name": "add",
            "enable_as": f"mcp:{server}/add",
            "description": "Add two integers.",
            "input_schema": ADD_SCHEMA,
        },
        {
            "name": "getenv",
            "enable_as": f"mcp:{server}/getenv",
            "description": 'An environment variable of this process ("" when unset).',
            "input_schema": GETENV_SCHEMA,
        },
        {
            "name": "nap",
            "enable_as": f"mcp:{server}/nap",
            "description": "Sleep, then say so.",
            "input_schema": NAP_SCHEMA,
        },
        {
            "name": "shout",
            "enable_as": f"mcp:{server}/shout",
            "description": "The text in capitals.",
            "input_schema": SHOUT_SCHEMA,
        },
    ]


@contextlib.contextmanager
def http_server(token: str = TOKEN) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The fixture server over streamable HTTP on a free port: its URL and its process."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, FIXTURE, "http", str(port)],
        env={"MCP_FIXTURE_TOKEN": token, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None, "the MCP fixture server exited"
                assert time.monotonic() < deadline, "the MCP fixture server did not start"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp", process
    finally:
        process.kill()
        process.wait()


def mcp_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "mcp_allowed_hosts": ["127.0.0.1"],
        "mcp_stdio_commands": [sys.executable],
        # Generous: a stdio call starts a Python process, seconds on a busy machine.
        "mcp_timeout_seconds": 60,
    }
    return make_settings(database_url, **{**values, **overrides})


@pytest.fixture
async def http(database_url: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with 127.0.0.1 allowlisted and this Python as the one stdio command; then the
    MCP policy of the session's settings again."""
    try:
        async with running(create_app(mcp_settings(database_url))) as client:
            yield client
    finally:
        mcp_tools.configure(settings)


async def register(http: httpx.AsyncClient, admin: User, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/mcp-servers", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def refresh(http: httpx.AsyncClient, admin: User, server_id: str) -> dict[str, Any]:
    response = await http.post(f"/mcp-servers/{server_id}/refresh", headers=admin.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def local_server(http: httpx.AsyncClient, admin: User) -> dict[str, Any]:
    """The fixture server over stdio, registered as `local` and refreshed."""
    created = await register(
        http,
        admin,
        {"name": "local", "transport": "stdio", "command": sys.executable,
         "args": [FIXTURE, "stdio"]},
    )  # fmt: skip
    return await refresh(http, admin, created["id"])


async def agent_with(http: httpx.AsyncClient, admin: User, tools: list[str]) -> httpx.Response:
    body = {"name": f"MCP {uuid.uuid4().hex[:6]}", "model_name": "fake:tools"}
    return await http.post("/agents/", json={**body, "tools_enabled": tools}, headers=admin.headers)


async def say(
    http: httpx.AsyncClient, user: User, chat_id: str, arguments: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's answer and its one tool message, after a message whose text is
    ``arguments`` (``fake:tools`` calls the agent's first tool with them)."""
    sent = await http.post(
        f"/chats/{chat_id}/messages", json={"content": json.dumps(arguments)}, headers=user.headers
    )
    assert sent.status_code == 201, sent.text
    answer = sent.json()
    assert answer["status"] == "success", answer
    [tool_message] = [m for m in answer["messages"] if m["sender"] == "tool"]
    return answer, tool_message


async def new_chat(http: httpx.AsyncClient, user: User, agent_id: str) -> str:
    chat = await http.post("/chats/", json={"agent_id": agent_id}, headers=user.headers)
    assert chat.status_code == 201, chat.text
    return str(chat.json()["id"])


async def test_an_http_server_is_registered_refreshed_and_called_in_a_run(
    http: httpx.AsyncClient, admin: User, user: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with http_server() as (url, process):
        created = await register(
            http,
            admin,
            {
                "name": "calc",
                "transport": "streamable_http",
                "url": url,
                "headers": {"Authorization": f"Bearer {TOKEN}"},
            },
        )
        assert created["header_names"] == ["Authorization"]
        assert (created["tools"], created["refreshed_at"]) == (None, None)
        # Before a refresh its tools are unknown: an agent cannot enable them yet.
        assert_error(await agent_with(http, admin, ["mcp:calc/add"]), 404, "mcp_tool_not_found")

        refreshed = await refresh(http, admin, created["id"])
        assert refreshed["tools"] == tools_of("calc")
        assert refreshed["refreshed_at"] is not None
        listed = await http.get("/mcp-servers", headers=admin.headers)
        one = await http.get(f"/mcp-servers/{created['id']}", headers=admin.headers)
        assert listed.json() == [one.json()] == [refreshed]
        for response in (listed, one):
            assert TOKEN not in response.text

        # GET /tools shows them, from their server.
        catalog = (await http.get("/tools", headers=user.headers)).json()
        mcp_entries = [t for t in catalog if t["package"] == "mcp:calc"]
        assert [(t["name"], t["parameters"]) for t in mcp_entries] == [
            ("mcp:calc/add", ADD_SCHEMA),
            ("mcp:calc/getenv", GETENV_SCHEMA),
            ("mcp:calc/nap", NAP_SCHEMA),
            ("mcp:calc/shout", SHOUT_SCHEMA),
        ]

        agent = await agent_with(http, admin, ["mcp:calc/add"])
        assert agent.status_code == 201, agent.text
        assert agent.json()["tools_enabled"] == ["mcp:calc/add"]
        chat_id = await new_chat(http, user, agent.json()["id"])
        answer, result = await say(http, user, chat_id, {"a": 2, "b": 40})
        assert (result["content"], result["metadata"]["is_error"]) == ("42", False)
        assert result["metadata"]["name"] == "mcp_calc_add"
        assert answer["messages"][-1]["content"] == "42"

        # The server goes away mid-conversation: the tool answers an error, the run succeeds.
        process.kill()
        process.wait()
        answer, result = await say(http, user, chat_id, {"a": 1, "b": 1})
        assert result["metadata"]["is_error"] is True
        assert result["content"] == (
            "Error: the MCP server calc is unavailable: it could not be reached or did not "
            "answer as an MCP server. Try again later, or answer without this tool."
        )
        # A refresh now is a 502, and the list from before stays.
        down = await http.post(f"/mcp-servers/{created['id']}/refresh", headers=admin.headers)
        assert assert_error(down, 502, "mcp_server_unavailable")["detail"] == (
            "The MCP server calc could not be asked for its tools: it could not be reached or "
            "did not answer as an MCP server"
        )
        kept = await http.get(f"/mcp-servers/{created['id']}", headers=admin.headers)
        assert kept.json() == refreshed
    assert TOKEN not in caplog.text


async def test_wrong_headers_make_the_refresh_fail(http: httpx.AsyncClient, admin: User) -> None:
    """The headers registered are the ones sent: the fixture refuses other tokens."""
    with http_server() as (url, _):
        created = await register(
            http,
            admin,
            {
                "name": "locked",
                "transport": "streamable_http",
                "url": url,
                "headers": {"Authorization": "Bearer wrong"},
            },
        )
        response = await http.post(f"/mcp-servers/{created['id']}/refresh", headers=admin.headers)
        assert_error(response, 502, "mcp_server_unavailable")
        assert (await http.get(f"/mcp-servers/{created['id']}", headers=admin.headers)).json()[
            "tools"
        ] is None


async def test_a_stdio_server_runs_an_allowlisted_command(
    http: httpx.AsyncClient, admin: User, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_TEST_ONLY", "not for MCP servers")
    created = await register(
        http,
        admin,
        {
            "name": "local",
            "transport": "stdio",
            "command": sys.executable,
            "args": [FIXTURE, "stdio"],
            "env": {"FIXTURE_SECRET": TOKEN},
        },
    )
    assert (created["command"], created["args"]) == (sys.executable, [FIXTURE, "stdio"])
    assert created["env_names"] == ["FIXTURE_SECRET"]
    assert TOKEN not in json.dumps(created)
    assert (await refresh(http, admin, created["id"]))["tools"] == tools_of("local")

    agent = await agent_with(http, admin, ["mcp:local/shout"])
    assert agent.status_code == 201, agent.text
    chat_id = await new_chat(http, user, agent.json()["id"])
    _, result = await say(http, user, chat_id, {"text": "quiet please"})
    assert (result["content"], result["metadata"]["is_error"]) == ("QUIET PLEASE", False)

    # The process gets the env it was registered with, and none of this server's own.
    reader = await agent_with(http, admin, ["mcp:local/getenv"])
    assert reader.status_code == 201, reader.text
    reader_chat = await new_chat(http, user, reader.json()["id"])
    for name, expected in (("FIXTURE_SECRET", TOKEN), ("SWITCHBOARD_TEST_ONLY", "")):
        _, result = await say(http, user, reader_chat, {"name": name})
        assert (result["content"], result["metadata"]["is_error"]) == (expected, False)

    # Removed: the agent runs without the tool (the model has none to call).
    deleted = await http.delete(f"/mcp-servers/{created['id']}", headers=admin.headers)
    assert deleted.status_code == 204
    assert_error(
        await http.get(f"/mcp-servers/{created['id']}", headers=admin.headers), 404, "not_found"
    )
    sent = await http.post(
        f"/chats/{chat_id}/messages", json={"content": "again"}, headers=user.headers
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["messages"][-1]["content"] == "I have no tools enabled."


async def test_a_command_off_the_allowlist_is_a_422_and_creates_nothing(
    http: httpx.AsyncClient, admin: User
) -> None:
    for command in ("/bin/sh", "python3", sys.executable + "x"):
        response = await http.post(
            "/mcp-servers",
            json={"name": "shell", "transport": "stdio", "command": command, "args": ["-c", "id"]},
            headers=admin.headers,
        )
        assert assert_error(response, 422, "mcp_command_not_allowed")["detail"] == (
            "This command is not one MCP servers may run here (SWITCHBOARD_MCP_STDIO_COMMANDS)"
        )
    assert (await http.get("/mcp-servers", headers=admin.headers)).json() == []


async def test_private_urls_are_refused_without_the_allowlist(
    client: httpx.AsyncClient, admin: User
) -> None:
    """The session's app allowlists no MCP host: the SSRF guard decides."""
    refused = {
        "http://127.0.0.1:9/mcp": "127.0.0.1 is not an address requests may go to (loopback)",
        "http://10.1.2.3/mcp": "10.1.2.3 is not an address requests may go to (private)",
        "http://169.254.169.254/mcp": (
            "169.254.169.254 is not an address requests may go to (cloud metadata service)"
        ),
        "http://[::1]/mcp": "::1 is not an address requests may go to (loopback)",
        "ftp://example.com/mcp": "only http and https URLs are allowed",
        "http://user:pw@example.com/mcp": "a URL with a user name or password is not allowed",
    }
    for url, reason in refused.items():
        response = await client.post(
            "/mcp-servers",
            json={"name": "inner", "transport": "streamable_http", "url": url},
            headers=admin.headers,
        )
        body = assert_error(response, 422, "mcp_url_not_allowed")
        assert body["detail"] == f"This MCP server URL is not allowed: {reason}", url
    assert (await client.get("/mcp-servers", headers=admin.headers)).json() == []


async def test_a_server_whose_url_became_private_is_not_called(
    http: httpx.AsyncClient, admin: User, database_url: str, settings: Settings
) -> None:
    """The guard is asked again at call time, not only at registration: with the allowlist
    gone, the same server is refused before anything is sent."""
    with http_server() as (url, _):
        created = await register(
            http, admin, {"name": "moved", "transport": "streamable_http", "url": url}
        )
        mcp_tools.configure(mcp_settings(database_url, mcp_allowed_hosts=[]))
        response = await http.post(f"/mcp-servers/{created['id']}/refresh", headers=admin.headers)
        assert assert_error(response, 502, "mcp_server_unavailable")["detail"] == (
            "The MCP server moved could not be asked for its tools: its URL is not allowed "
            "(127.0.0.1 is not an address requests may go to (loopback))"
        )


async def test_agents_name_only_listed_tools_of_registered_servers(
    http: httpx.AsyncClient, admin: User
) -> None:
    await local_server(http, admin)
    for tools in (["mcp:local/divide"], ["mcp:elsewhere/add"], ["calculator", "mcp:x/add"]):
        body = assert_error(await agent_with(http, admin, tools), 404, "mcp_tool_not_found")
        assert body["detail"] == (
            f"No registered MCP server listed these tools at its last refresh: {tools[-1]}"
        )
    # Not an MCP tool's name at all: an unknown tool, as ever.
    for tools in (["mcp:LOCAL/add"], ["mcp:local"], ["mcp:local/add/x"]):
        assert_error(await agent_with(http, admin, tools), 422)
    # Through the Agent Protocol too.
    assistant = await http.post(
        "/assistants",
        json={
            "graph_id": "assistant",
            "name": "A",
            "config": {"configurable": {"tools_enabled": ["mcp:local/nope"]}},
        },
        headers=admin.headers,
    )
    assert_error(assistant, 404, "mcp_tool_not_found")
    # A gate on an MCP tool names one its server listed, as `tools_enabled` does.
    gated = await http.post(
        "/agents/",
        json={"name": "Gated", "tools_requiring_approval": ["mcp:local/divide"]},
        headers=admin.headers,
    )
    assert_error(gated, 404, "mcp_tool_not_found")
    both = await agent_with(http, admin, ["calculator", "mcp:local/add", "mcp:local/shout"])
    assert both.status_code == 201, both.text
    assert both.json()["tools_enabled"] == ["calculator", "mcp:local/add", "mcp:local/shout"]


async def test_registration_rules(http: httpx.AsyncClient, admin: User, user: User) -> None:
    body = {"name": "twice", "transport": "stdio", "command": sys.executable, "args": []}
    await register(http, admin, body)
    assert_error(
        await http.post("/mcp-servers", json=body, headers=admin.headers),
        409,
        "mcp_server_exists",
    )
    invalid = [
        {**body, "name": "Upper"},
        {**body, "name": "has space"},
        {**body, "transport": "sse"},
        {"name": "nourl", "transport": "streamable_http"},
        {"name": "nocmd", "transport": "stdio"},
        {**body, "name": "env", "env": {"BAD-NAME": "x"}},
        {
            "name": "crlf",
            "transport": "streamable_http",
            "url": "http://127.0.0.1/mcp",
            "headers": {"X-A": "a\r\nInjected: yes"},
        },
        {**body, "name": "extra", "url": "http://127.0.0.1/mcp"},
    ]
    for bad in invalid:
        response = await http.post("/mcp-servers", json=bad, headers=admin.headers)
        assert_error(response, 422, "validation_error")
    assert [s["name"] for s in (await http.get("/mcp-servers", headers=admin.headers)).json()] == [
        "twice"
    ]
    missing = str(uuid.uuid4())
    for method, path in (
        ("GET", f"/mcp-servers/{missing}"),
        ("DELETE", f"/mcp-servers/{missing}"),
        ("POST", f"/mcp-servers/{missing}/refresh"),
    ):
        assert_error(await http.request(method, path, headers=admin.headers), 404, "not_found")
        assert_error(await http.request(method, path, headers=user.headers), 403, "forbidden")
    assert_error(await http.get("/mcp-servers", headers=user.headers), 403, "forbidden")
    assert_error(await http.post("/mcp-servers", json=body, headers=user.headers), 403)


async def test_a_server_too_slow_answers_a_timeout_the_model_reads(
    database_url: str, settings: Settings, admin: User, user: User
) -> None:
    try:
        app = create_app(mcp_settings(database_url, mcp_timeout_seconds=3))
        async with running(app) as http, contextlib.AsyncExitStack() as stack:
            url, _ = stack.enter_context(http_server())
            created = await register(
                http,
                admin,
                {"name": "sleepy", "transport": "streamable_http", "url": url,
                 "headers": {"Authorization": f"Bearer {TOKEN}"}},
            )  # fmt: skip
            await refresh(http, admin, created["id"])
            agent = await agent_with(http, admin, ["mcp:sleepy/nap"])
            chat_id = await new_chat(http, user, agent.json()["id"])
            _, result = await say(http, user, chat_id, {"seconds": 60})
            assert result["metadata"]["is_error"] is True
            assert result["content"] == (
                "Error: the MCP server sleepy is unavailable: it did not answer within 3 s. "
                "Try again later, or answer without this tool."
            )
    finally:
        mcp_tools.configure(settings)


async def test_an_mcp_tool_waits_for_approval_then_runs_as_edited(
    http: httpx.AsyncClient, admin: User, user: User
) -> None:
    await local_server(http, admin)
    agent = await http.post(
        "/agents/",
        json={
            "name": "Gated MCP",
            "model_name": "fake:tools",
            "tools_enabled": ["mcp:local/add"],
            "tools_requiring_approval": ["mcp:local/add"],
        },
        headers=admin.headers,
    )
    assert agent.status_code == 201, agent.text
    assert agent.json()["tools_requiring_approval"] == ["mcp:local/add"]
    chat_id = await new_chat(http, user, agent.json()["id"])

    paused = await http.post(
        f"/chats/{chat_id}/messages",
        json={"content": json.dumps({"a": 2, "b": 40})},
        headers=user.headers,
    )
    assert paused.status_code == 201, paused.text
    assert paused.json()["status"] == "interrupted"
    # Not called yet: the thread holds the question and the call, no tool result.
    page = (await http.get(f"/chats/{chat_id}/messages", headers=user.headers)).json()
    assert [m["sender"] for m in page["items"]] == ["user", "agent"]
    [call] = page["items"][1]["metadata"]["tool_calls"]
    assert (call["name"], call["args"]) == ("mcp_local_add", {"a": 2, "b": 40})

    edited = await http.post(
        f"/chats/{chat_id}/approvals",
        json={"decisions": [{"tool_call_id": call["id"], "action": "edit",
                             "args": {"a": 2, "b": 3}}]},
        headers=user.headers,
    )  # fmt: skip
    assert edited.status_code == 201, edited.text
    answer = edited.json()
    assert answer["status"] == "success"
    [result] = [m for m in answer["messages"] if m["sender"] == "tool"]
    # The server ran the reviewer's arguments, not the model's.
    assert result["metadata"]["name"] == "mcp_local_add"
    assert result["content"].endswith(
        'Executed instead: mcp_local_add with arguments {"a": 2, "b": 3}.\n\nTool response:\n5'
    ), result["content"]
    assert result["metadata"]["tool_call_id"] == call["id"]
