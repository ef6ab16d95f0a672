"""Agent versions: every definition an agent has had, restoring one as a new version, and runs
that record (and use) the version they ran on; on both APIs, the official SDK included."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from api.schemas.agents import AgentOut
from api.schemas.protocol_out import Assistant, AssistantVersion
from api.services import agents as agents_service
from storage import agents as agents_store
from storage.migrate import load_migrations
from tests.conftest import JWT_SECRET, User, assert_error
from tests.servers import beside_the_tests

DEFINITION = (
    "name", "description", "system_prompt", "avatar_url", "model_name", "tools_enabled",
    "tools_requiring_approval", "interest_area_ids",
)  # fmt: skip


def at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def definition(agent: dict[str, Any]) -> dict[str, Any]:
    return {k: agent[k] for k in DEFINITION}


async def _agent_with_history(
    client: httpx.AsyncClient, admin: User, interest_areas: dict[str, str]
) -> list[dict[str, Any]]:
    """An agent created and then updated twice: its three definitions, oldest first."""
    created = await client.post(
        "/agents/",
        json={
            "name": "Versioned",
            "description": "first",
            "system_prompt": "Be exact.",
            "model_name": "fake:echo",
            "tools_enabled": ["calculator"],
            "interest_area_ids": [interest_areas["law"]],
        },
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    agent = created.json()
    url = f"/agents/{agent['id']}"
    second = await client.put(
        url,
        json={"model_name": "fake:tokens-3", "avatar_url": "https://example.org/a.png"},
        headers=admin.headers,
    )
    assert second.status_code == 200, second.text
    third = await client.put(
        url,
        json={
            "name": "Versioned three",
            "tools_enabled": ["calculator", "unit_converter"],
            "tools_requiring_approval": ["unit_converter"],
            "interest_area_ids": [],
        },
        headers=admin.headers,
    )
    assert third.status_code == 200, third.text
    return [agent, second.json(), third.json()]


async def test_every_update_keeps_the_previous_definition(
    client: httpx.AsyncClient, admin: User, interest_areas: dict[str, str]
) -> None:
    first, second, third = await _agent_with_history(client, admin, interest_areas)
    assert [first["version"], second["version"], third["version"]] == [1, 2, 3]
    listed = await client.get(f"/agents/{first['id']}/versions", headers=admin.headers)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 20, 0)
    assert [v["version"] for v in page["items"]] == [3, 2, 1]
    assert [definition(v) for v in page["items"]] == [
        definition(third), definition(second), definition(first)
    ]  # fmt: skip
    assert definition(page["items"][2]) == {
        "name": "Versioned", "description": "first", "system_prompt": "Be exact.",
        "avatar_url": None, "model_name": "fake:echo", "tools_enabled": ["calculator"],
        "tools_requiring_approval": [], "interest_area_ids": [interest_areas["law"]],
    }  # fmt: skip
    assert {v["agent_id"] for v in page["items"]} == {first["id"]}
    # Each version's time is when it became current.
    assert [v["created_at"] for v in page["items"]] == [
        third["updated_at"], second["updated_at"], first["created_at"]
    ]  # fmt: skip

    paged = await client.get(
        f"/agents/{first['id']}/versions", params={"limit": 1, "offset": 1}, headers=admin.headers
    )
    assert [v["version"] for v in paged.json()["items"]] == [2]
    assert (paged.json()["total"], paged.json()["limit"], paged.json()["offset"]) == (3, 1, 1)

    one = await client.get(f"/agents/{first['id']}/versions/2", headers=admin.headers)
    assert one.status_code == 200, one.text
    assert one.json() == page["items"][1]

    # The Agent Protocol's page, with the official server's pagination headers.
    assistant = await client.post(
        f"/assistants/{first['id']}/versions", json={"limit": 1, "offset": 1}, headers=admin.headers
    )
    assert assistant.status_code == 200, assistant.text
    assert [(v["version"], v["name"]) for v in assistant.json()] == [(2, "Versioned")]
    pagination = {k: assistant.headers.get(k) for k in ("x-pagination-total", "x-pagination-next")}
    assert pagination == {"x-pagination-total": "3", "x-pagination-next": "2"}


async def test_restore_makes_an_old_definition_current_as_a_new_version(
    client: httpx.AsyncClient, admin: User, user: User, interest_areas: dict[str, str]
) -> None:
    first, second, third = await _agent_with_history(client, admin, interest_areas)
    chat = await client.post("/chats/", json={"agent_id": first["id"]}, headers=user.headers)
    chat_id = chat.json()["id"]
    # Version 3 runs on fake:tokens-3.
    before = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "hello"}, headers=user.headers
    )
    assert before.status_code == 201, before.text
    assert before.json()["messages"][-1]["content"] == "tok0 tok1 tok2"

    restored = await client.post(f"/agents/{first['id']}/versions/1/restore", headers=admin.headers)
    assert restored.status_code == 200, restored.text
    assert restored.json()["version"] == 4
    assert definition(restored.json()) == definition(first)
    current = await client.get(f"/agents/{first['id']}", headers=user.headers)
    assert current.json() == restored.json()

    # History is kept as it was, with the restored definition on top.
    listed = (await client.get(f"/agents/{first['id']}/versions", headers=admin.headers)).json()
    assert [v["version"] for v in listed["items"]] == [4, 3, 2, 1]
    assert [definition(v) for v in listed["items"]] == [
        definition(first), definition(third), definition(second), definition(first)
    ]  # fmt: skip

    # The next message runs on the restored definition (fake:echo), and each run names the
    # version it used.
    after = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "hello"}, headers=user.headers
    )
    assert after.status_code == 201, after.text
    assert after.json()["messages"][-1]["content"] == "You said: hello"
    runs = [
        (await client.get(f"/runs/{r.json()['run_id']}", headers=user.headers)).json()
        for r in (before, after)
    ]
    assert [(r["agent_version"], r["model_name"]) for r in runs] == [
        (3, "fake:tokens-3"), (4, "fake:echo")
    ]  # fmt: skip
    listed_runs = (await client.get(f"/chats/{chat_id}/runs", headers=user.headers)).json()
    assert sorted(r["agent_version"] for r in listed_runs["items"]) == [3, 4]
    # The chat's history names, for each checkpoint a run wrote, the version that run used.
    history = await client.get(
        f"/chats/{chat_id}/history", params={"limit": 200}, headers=user.headers
    )
    written = {(c["run_id"], c["agent_version"]) for c in history.json()["items"]}
    assert written == {
        (before.json()["run_id"], 3), (after.json()["run_id"], 4)
    }  # fmt: skip


async def test_an_unknown_version_is_a_404_of_its_own_and_changes_nothing(
    client: httpx.AsyncClient, admin: User, interest_areas: dict[str, str]
) -> None:
    first, _, third = await _agent_with_history(client, admin, interest_areas)
    for url in (f"/agents/{first['id']}/versions/4", f"/agents/{first['id']}/versions/99/restore"):
        method = "POST" if url.endswith("restore") else "GET"
        response = await client.request(method, url, headers=admin.headers)
        assert_error(response, 404, "version_not_found")
    # An agent that does not exist (or is retired) is the agent's 404, not the version's.
    missing = uuid.uuid4()
    for url in (
        f"/agents/{missing}/versions",
        f"/agents/{missing}/versions/1",
        f"/agents/{missing}/versions/1/restore",
    ):
        method = "POST" if url.endswith("restore") else "GET"
        assert_error(await client.request(method, url, headers=admin.headers), 404, "not_found")
    current = await client.get(f"/agents/{first['id']}", headers=admin.headers)
    assert current.json() == third
    total = (await client.get(f"/agents/{first['id']}/versions", headers=admin.headers)).json()
    assert total["total"] == 3


async def test_a_retired_agents_versions_are_gone_with_it(
    client: httpx.AsyncClient, admin: User, interest_areas: dict[str, str]
) -> None:
    first, _, _ = await _agent_with_history(client, admin, interest_areas)
    deleted = await client.delete(f"/agents/{first['id']}", headers=admin.headers)
    assert deleted.status_code == 204
    for method, url in (
        ("GET", f"/agents/{first['id']}/versions"),
        ("GET", f"/agents/{first['id']}/versions/1"),
        ("POST", f"/agents/{first['id']}/versions/1/restore"),
    ):
        assert_error(await client.request(method, url, headers=admin.headers), 404, "not_found")


async def test_restoring_a_definition_whose_tool_is_gone_is_a_422(
    client: httpx.AsyncClient, admin: User, interest_areas: dict[str, str], database_url: str
) -> None:
    first, _, third = await _agent_with_history(client, admin, interest_areas)
    # As if version 1 had been saved by a server that had a tool this one lacks.
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as db:
        await db.execute(
            "UPDATE agent_versions SET tools_enabled = '[\"retired_tool\"]'"
            " WHERE agent_id = %s AND version = 1",
            (first["id"],),
        )
    refused = await client.post(f"/agents/{first['id']}/versions/1/restore", headers=admin.headers)
    assert "retired_tool" in assert_error(refused, 422, "invalid_input")["detail"]
    assert (await client.get(f"/agents/{first['id']}", headers=admin.headers)).json() == third
    listed = (await client.get(f"/agents/{first['id']}/versions", headers=admin.headers)).json()
    assert listed["total"] == 3


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/versions/0", {}),
        ("/versions/-1", {}),
        ("/versions/x", {}),
        ("/versions/2147483648", {}),
        ("/versions", {"limit": 0}),
        ("/versions", {"limit": 101}),
        ("/versions", {"offset": -1}),
    ],
)
async def test_bad_version_requests_are_422(
    client: httpx.AsyncClient, admin: User, seeded_agents: dict[str, Any], path: str, params: Any
) -> None:
    agent = seeded_agents["assistant"]
    url = f"/agents/{agent['id']}{path}"
    response = await client.get(url, params=params, headers=admin.headers)
    assert_error(response, 422, "validation_error")
    if path != "/versions":
        restore = await client.post(f"{url}/restore", headers=admin.headers)
        assert_error(restore, 422, "validation_error")
    current = await client.get(f"/agents/{agent['id']}", headers=admin.headers)
    assert current.json() == agent


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("latest", {}),
        ("latest", {"version": 0}),
        ("latest", {"version": "1"}),
        ("latest", {"version": 1.5}),
        ("latest", {"version": True}),
        ("versions", {"limit": 0}),
        ("versions", {"limit": "10"}),
        ("versions", {"offset": -1}),
        ("versions", {"metadata": "x"}),
    ],
)
async def test_bad_assistant_version_bodies_are_422(
    client: httpx.AsyncClient, admin: User, seeded_agents: dict[str, Any], path: str, body: Any
) -> None:
    agent = seeded_agents["assistant"]
    response = await client.post(
        f"/assistants/{agent['id']}/{path}", json=body, headers=admin.headers
    )
    assert_error(response, 422, "validation_error")
    assert (await client.get(f"/agents/{agent['id']}", headers=admin.headers)).json() == agent


async def test_version_routes_are_for_admins(
    client: httpx.AsyncClient, user: User, seeded_agents: dict[str, Any]
) -> None:
    agent = seeded_agents["assistant"]
    for method, url, body in (
        ("GET", f"/agents/{agent['id']}/versions", None),
        ("GET", f"/agents/{agent['id']}/versions/1", None),
        ("POST", f"/agents/{agent['id']}/versions/1/restore", None),
        ("POST", f"/assistants/{agent['id']}/versions", {}),
        ("POST", f"/assistants/{agent['id']}/latest", {"version": 1}),
    ):
        response = await client.request(method, url, json=body, headers=user.headers)
        assert_error(response, 403, "forbidden")
    assert (await client.get(f"/agents/{agent['id']}", headers=user.headers)).json() == agent


async def test_every_seeded_agent_has_its_first_version(
    client: httpx.AsyncClient, admin: User, seeded_agents: dict[str, Any]
) -> None:
    # Seeded by the same storage function as any new agent.
    for agent in seeded_agents.values():
        listed = await client.get(f"/agents/{agent['id']}/versions", headers=admin.headers)
        [only] = listed.json()["items"]
        assert (only["version"], definition(only)) == (1, definition(agent))


@pytest.fixture
async def fresh_database(embedded_pg: Any) -> AsyncIterator[str]:
    name = f"switchboard_versions_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(embedded_pg.uri(), autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {name}")
    try:
        yield embedded_pg.uri(name)
    finally:
        async with await psycopg.AsyncConnection.connect(
            embedded_pg.uri(), autocommit=True
        ) as conn:
            await conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


async def test_the_migration_records_each_existing_agents_current_definition(
    fresh_database: str,
) -> None:
    migrations = load_migrations()
    [versions_migration] = [m for m in migrations if m.name == "agent_versions"]
    async with await psycopg.AsyncConnection.connect(fresh_database, autocommit=True) as conn:
        for migration in migrations[: versions_migration.version - 1]:
            await conn.execute(migration.sql)
        # Agents as a server before versions left them: one updated twice, one retired.
        await conn.execute(
            "INSERT INTO agents (slug, name, description, system_prompt, model_name,"
            " tools_enabled, tools_requiring_approval, version, updated_at, deleted_at) VALUES"
            " ('kept', 'Kept', 'd', 'p', 'fake:echo', '[\"calculator\"]', '[]', 3,"
            "  '2026-01-02T00:00:00Z', NULL),"
            " ('gone', 'Gone', '', '', NULL, '[]', '[]', 2, '2026-01-03T00:00:00Z', now())"
        )
        await conn.execute(versions_migration.sql)
        cur = await conn.execute(
            "SELECT a.slug, v.version, v.name, v.description, v.system_prompt, v.model_name,"
            " v.tools_enabled, v.tools_requiring_approval, v.interest_area_ids,"
            " v.created_at = a.updated_at"
            " FROM agent_versions v JOIN agents a ON a.id = v.agent_id ORDER BY a.slug"
        )
        rows = await cur.fetchall()
    assert rows == [
        ("gone", 2, "Gone", "", "", None, [], [], [], True),
        ("kept", 3, "Kept", "d", "p", "fake:echo", ["calculator"], [], [], True),
    ]


async def test_the_sdk_lists_versions_and_sets_the_latest(
    client: httpx.AsyncClient, admin: User, user: User, interest_areas: dict[str, str],
    database_url: str,
) -> None:  # fmt: skip
    first, _, third = await _agent_with_history(client, admin, interest_areas)
    with beside_the_tests(database_url, JWT_SECRET) as server:
        sdk = get_client(url=server.url, headers=admin.headers)
        versions = await sdk.assistants.get_versions(first["id"])
        assert [v["version"] for v in versions] == [3, 2, 1]
        assert [(v["name"], v["config"]["configurable"]["model_name"]) for v in versions] == [
            ("Versioned three", "fake:tokens-3"),
            ("Versioned", "fake:tokens-3"),
            ("Versioned", "fake:echo"),
        ]
        assert versions[0] == {
            "assistant_id": first["id"], "graph_id": first["slug"],
            "config": {"configurable": {
                "model_name": "fake:tokens-3",
                "tools_enabled": ["calculator", "unit_converter"],
                "tools_requiring_approval": ["unit_converter"],
            }},
            "context": {}, "metadata": {}, "name": "Versioned three", "description": "first",
            "version": 3, "created_at": versions[0]["created_at"],
        }  # fmt: skip
        assert at(versions[0]["created_at"]) == at(third["updated_at"])
        # Field for field the documented models (api/schemas/protocol_out.py).
        for version in versions:
            AssistantVersion.model_validate(version)
            assert set(version) == set(AssistantVersion.model_fields)
        # By graph id too, paged as the official server pages.
        paged = await sdk.assistants.get_versions(first["slug"], limit=1, offset=2)
        assert [v["version"] for v in paged] == [1]
        assert await sdk.assistants.get_versions(first["id"], metadata={"k": "v"}) == []

        latest = await sdk.assistants.set_latest(first["id"], 1)
        assert (latest["version"], latest["name"]) == (4, "Versioned")
        assert latest["config"]["configurable"]["model_name"] == "fake:echo"
        assert (await sdk.assistants.get(first["id"])) == latest
        assert set(latest) == set(Assistant.model_fields)

        with pytest.raises(NotFoundError):
            await sdk.assistants.set_latest(first["id"], 9)
        with pytest.raises(NotFoundError):
            await sdk.assistants.get_versions(str(uuid.uuid4()))

        # A run through the Agent Protocol uses the definition set as latest.
        users_sdk = get_client(url=server.url, headers=user.headers)
        thread = await users_sdk.threads.create()
        state = await users_sdk.runs.wait(
            thread["thread_id"],
            first["id"],
            input={"messages": [{"role": "user", "content": "again"}]},
        )
        assert isinstance(state, dict)
        assert state["messages"][-1]["content"] == "You said: again"
        [run] = await users_sdk.runs.list(thread["thread_id"])
    shown = await client.get(f"/runs/{run['run_id']}", headers=user.headers)
    assert shown.json()["agent_version"] == 4


async def test_an_agent_reads_as_it_was_at_a_recorded_version(
    app: FastAPI, client: httpx.AsyncClient, admin: User, interest_areas: dict[str, str]
) -> None:
    """What a worker runs a queued run with: the definition of the version it was recorded
    with, even if the agent changed while it waited."""
    first, second, third = await _agent_with_history(client, admin, interest_areas)
    agent_id = uuid.UUID(first["id"])
    async with app.state.switchboard.pool.connection() as conn:
        at = [await agents_store.get_at_version(conn, agent_id, n) for n in (1, 2, 3, 4)]
    assert at[3] is None
    for row, expected in zip(at[:3], (first, second, third), strict=True):
        assert row is not None
        # Everything but updated_at (the agent's, now) is as the API showed it then.
        shown = AgentOut.model_validate(agents_service.agent_out(row)).model_dump(mode="json")
        assert shown | {"updated_at": None} == {**expected, "updated_at": None}


async def test_a_replays_turns_name_the_agent_version_they_ran_on(
    client: httpx.AsyncClient, admin: User, user: User, interest_areas: dict[str, str]
) -> None:
    first, _, _ = await _agent_with_history(client, admin, interest_areas)
    chat = await client.post("/chats/", json={"agent_id": first["id"]}, headers=user.headers)
    chat_id = chat.json()["id"]
    sent = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "hello"}, headers=user.headers
    )
    assert sent.json()["messages"][-1]["content"] == "tok0 tok1 tok2"
    restored = await client.post(f"/agents/{first['id']}/versions/1/restore", headers=admin.headers)
    assert restored.json()["version"] == 4
    started = await client.post(
        f"/chats/{chat_id}/replays", json={"agent_id": first["id"]}, headers=user.headers
    )
    assert started.status_code == 202, started.text
    replay = started.json()
    assert [t["agent_version"] for t in replay["turns"]] == [None]
    while replay["status"] in ("pending", "running"):
        await asyncio.sleep(0.05)
        replay = (await client.get(f"/replays/{replay['id']}", headers=user.headers)).json()
    assert replay["status"] == "done"
    [turn] = replay["turns"]
    assert (turn["agent_version"], turn["new"]["content"]) == (4, "You said: hello")
    assert turn["original"]["content"] == "tok0 tok1 tok2"
