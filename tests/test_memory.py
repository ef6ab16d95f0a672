"""Long-term memory: the ``remember`` and ``recall`` tools in chats with ``fake:tools``, and
``/users/me/memories``. Memories are per user, whatever a tool call's arguments say."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import User, assert_error


async def _agent(client: httpx.AsyncClient, admin: User, tool: str) -> str:
    # fake:tools calls the agent's first tool with the message (JSON: the arguments).
    body = {"name": f"Memory {tool}", "model_name": "fake:tools", "tools_enabled": [tool]}
    response = await client.post("/agents/", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
async def agents(client: httpx.AsyncClient, admin: User) -> dict[str, str]:
    return {tool: await _agent(client, admin, tool) for tool in ("remember", "recall")}


async def _say(client: httpx.AsyncClient, user: User, agent_id: str, content: str) -> str:
    """Open a chat with the agent, send ``content``, and return the tool's result."""
    chat = await client.post("/chats/", json={"agent_id": agent_id}, headers=user.headers)
    assert chat.status_code == 201, chat.text
    sent = await client.post(
        f"/chats/{chat.json()['id']}/messages", json={"content": content}, headers=user.headers
    )
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert body["status"] == "success", body
    [tool] = [m for m in body["messages"] if m["sender"] == "tool"]
    assert tool["metadata"]["is_error"] is False, tool
    # The agent answers with the tool's result.
    assert body["messages"][-1]["content"] == tool["content"]
    return str(tool["content"])


async def _memories(client: httpx.AsyncClient, user: User, **params: Any) -> dict[str, Any]:
    response = await client.get("/users/me/memories", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_remembered_in_one_chat_recalled_in_another_by_the_same_user_only(
    client: httpx.AsyncClient, user: User, other_user: User, agents: dict[str, str]
) -> None:
    said = await _say(client, user, agents["remember"], "My favourite colour is blue")
    assert said.startswith("Remembered (") and said.endswith("): My favourite colour is blue")
    key = said.removeprefix("Remembered (").split(")")[0]
    assert len(key) == 32

    named = await _say(
        client, user, agents["remember"], json.dumps({"text": "I live in Lisbon", "key": "home"})
    )
    assert named == "Remembered (home): I live in Lisbon"

    recalled = await _say(
        client, user, agents["recall"], json.dumps({"query": "which colour do I like", "k": 1})
    )
    assert recalled == "- My favourite colour is blue"
    both = await _say(client, user, agents["recall"], "where do I live")
    assert both == "- I live in Lisbon\n- My favourite colour is blue"

    # Another user recalls nothing, whatever the call's arguments name.
    for content in (
        "which colour do I like",
        json.dumps({"query": "colour", "k": 20, "user_id": user.id}),
        json.dumps({"query": f"users {user.id} memories", "namespace": ["users", user.id]}),
    ):
        assert await _say(client, other_user, agents["recall"], content) == (
            "Nothing is remembered about that."
        )
    assert (await _memories(client, other_user))["total"] == 0

    mine = await _memories(client, user)
    assert [(m["key"], m["text"]) for m in mine["items"]] == [
        ("home", "I live in Lisbon"),
        (key, "My favourite colour is blue"),
    ]


async def test_a_rejected_memory_is_an_error_the_model_sees(
    client: httpx.AsyncClient, user: User, agents: dict[str, str]
) -> None:
    chat = await client.post("/chats/", json={"agent_id": agents["remember"]}, headers=user.headers)
    content = json.dumps({"text": "x", "key": "no/slashes"})
    sent = await client.post(
        f"/chats/{chat.json()['id']}/messages", json={"content": content}, headers=user.headers
    )
    [tool] = [m for m in sent.json()["messages"] if m["sender"] == "tool"]
    assert tool["metadata"]["is_error"] is True
    assert (await _memories(client, user))["total"] == 0


async def _remember(client: httpx.AsyncClient, user: User, key: str, text: str) -> None:
    # The memories namespace is the store's ("memories",), as the store API names it.
    response = await client.put(
        "/store/items",
        json={"namespace": ["memories"], "key": key, "value": {"text": text}},
        headers=user.headers,
    )
    assert response.status_code == 204, response.text


async def test_memories_routes_list_search_and_delete(
    client: httpx.AsyncClient, user: User, other_user: User, database_url: str
) -> None:
    facts = {
        "colour": "My favourite colour is blue",
        "city": "I live in Lisbon, Portugal",
        "allergy": "I am allergic to peanuts",
        "pet": "My dog is called Rex",
    }
    for key, text in facts.items():
        await _remember(client, user, key, text)
    await _remember(client, other_user, "colour", "Bob's favourite colour is green")

    newest = await _memories(client, user)
    assert [m["key"] for m in newest["items"]] == ["pet", "allergy", "city", "colour"]
    assert (newest["total"], newest["limit"], newest["offset"], newest["reindexing"]) == (
        4,
        20,
        0,
        False,
    )
    assert all(m["score"] is None for m in newest["items"])
    assert set(newest["items"][0]) == {"key", "text", "created_at", "updated_at", "score"}
    page = await _memories(client, user, limit=2, offset=1)
    assert [m["key"] for m in page["items"]] == ["allergy", "city"]

    for query, best in [
        ("what food allergy do I have", "allergy"),
        ("name of my pet", "pet"),
        ("which colour do I like", "colour"),
    ]:
        searched = await _memories(client, user, query=query)
        assert searched["reindexing"] is False
        found = searched["items"]
        assert found[0]["key"] == best and found[0]["text"] == facts[best]
        scores = [m["score"] for m in found]
        assert scores == sorted(scores, reverse=True) and scores[0] > scores[1]
        assert len(found) == 4

    # Deleting one: another user's delete of the same key is a 404 and changes nothing.
    assert_error(
        await client.delete("/users/me/memories/allergy", headers=other_user.headers),
        404,
        "memory_not_found",
    )
    deleted = await client.delete("/users/me/memories/allergy", headers=user.headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert [m["key"] for m in (await _memories(client, user))["items"]] == ["pet", "city", "colour"]
    assert_error(
        await client.delete("/users/me/memories/allergy", headers=user.headers),
        404,
        "memory_not_found",
    )

    # Deleting all of them leaves the other user's, and the user's other store items.
    await client.put(
        "/store/items",
        json={"namespace": ["notes"], "key": "n", "value": {"text": "kept"}},
        headers=user.headers,
    )
    gone = await client.delete("/users/me/memories", headers=user.headers)
    assert gone.status_code == 204 and gone.content == b""
    assert (await _memories(client, user)) == {
        "items": [],
        "total": 0,
        "limit": 20,
        "offset": 0,
        "reindexing": False,
    }
    assert [m["text"] for m in (await _memories(client, other_user))["items"]] == [
        "Bob's favourite colour is green"
    ]
    async with await psycopg.AsyncConnection.connect(database_url) as db:
        rows = await (await db.execute("SELECT prefix, key FROM store ORDER BY prefix")).fetchall()
        vectors = await (await db.execute("SELECT count(*) FROM store_vectors")).fetchone()
    assert sorted(rows) == sorted(
        [(f"users.{other_user.id}.memories", "colour"), (f"users.{user.id}.notes", "n")]
    )
    # Vectors go with their items.
    assert vectors == (2,)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/users/me/memories?limit=0"),
        ("GET", "/users/me/memories?limit=101"),
        ("GET", "/users/me/memories?offset=-1"),
        ("GET", "/users/me/memories?query="),
        ("GET", "/users/me/memories?query=%00"),
        ("DELETE", "/users/me/memories/" + "k" * 256),
        ("DELETE", "/users/me/memories/a%00"),
    ],
)
async def test_bad_memory_input_is_a_422(
    client: httpx.AsyncClient, user: User, method: str, path: str
) -> None:
    assert_error(await client.request(method, path, headers=user.headers), 422, "validation_error")


async def test_memory_routes_need_a_token(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/users/me/memories"),
        ("DELETE", "/users/me/memories"),
        ("DELETE", "/users/me/memories/k"),
    ]:
        assert_error(await client.request(method, path), 401, "unauthorized")


async def test_the_store_is_set_up_once_by_processes_starting_together(
    embedded_pg: Any, database_url: str
) -> None:
    from api.bootstrap import upgrade_database
    from graphs.embeddings import get_embedder

    name = "switchboard_store_setup"
    async with await psycopg.AsyncConnection.connect(embedded_pg.uri(), autocommit=True) as db:
        await db.execute(f"DROP DATABASE IF EXISTS {name}")
        await db.execute(f"CREATE DATABASE {name}")
    url = embedded_pg.uri(name)
    try:
        await asyncio.gather(*(upgrade_database(url) for _ in range(3)))
        async with await psycopg.AsyncConnection.connect(url) as db:
            versions = "SELECT v FROM {} ORDER BY v"
            store = await (await db.execute(versions.format("store_migrations"))).fetchall()
            vector = await (await db.execute(versions.format("vector_migrations"))).fetchall()
            column = await (
                await db.execute(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                    " WHERE attrelid = 'store_vectors'::regclass AND attname = 'embedding'"
                )
            ).fetchone()
            model = await (
                await db.execute("SELECT model, dims FROM store_embedding_model")
            ).fetchall()
            queued = await (await db.execute("SELECT count(*) FROM store_reindex")).fetchone()
        assert store == [(0,), (1,), (2,), (3,)]
        assert vector == [(0,), (1,), (2,)]
        assert column == (f"halfvec({get_embedder().dims})",)
        # The model the vectors are made by, recorded once; nothing to re-index.
        assert model == [("local:wordllama-l2-256", 256)]
        assert queued == (0,)
    finally:
        async with await psycopg.AsyncConnection.connect(embedded_pg.uri(), autocommit=True) as db:
            await db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
