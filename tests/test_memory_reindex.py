"""Memories after a change of embedding model (issue 14): the store records the model and
dimension of its vectors; a server started with another model queues them, deletes them,
resizes the vector column and records the new model at start, then makes them again in the
background (surviving a restart), and searches say so meanwhile.

Each test has a database of its own: the session's app keeps the default model. The default
model is the real WordLlama; the others are deterministic test embedders (``HashEmbedder``)
standing in for OpenAI-compatible models, under names the settings accept.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from api.app import create_app
from api.bootstrap import upgrade_database
from api.services import store_reindexer
from api.services.auth import ensure_admin
from graphs import knowledge as knowledge_module
from graphs.embeddings import DEFAULT_EMBEDDING_MODEL, get_embedder
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, User, make_settings, running
from tests.knowledge_helpers import HashEmbedder

WIDE, NARROW, RENAMED = "openai:hash-wide@32", "openai:hash-narrow@32", "openai:hash-renamed@32"
# Keys in the order the re-indexer takes them (by prefix, key, field).
FACTS = {
    "a-colour": "My favourite colour is blue",
    "b-city": "I live in Lisbon, Portugal",
    "c-pet": "My dog is called Rex",
}
REINDEXING_NOTE = (
    "Note: memories are being re-indexed for a new embedding model; some are missing from "
    "these results until it is done."
)


class Metered(HashEmbedder):
    """A test embedder that, once ``passes`` batches holding a memory's text went through,
    makes the next one wait for ``gate`` (``waiting`` is set then). Other batches (the seeded
    knowledge document's chunks) always pass."""

    def __init__(self, name: str) -> None:
        super().__init__(name, 32)
        self.passes: int | None = None
        self.memory_batches = 0
        self.waiting = asyncio.Event()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        if set(texts) & set(FACTS.values()):
            self.memory_batches += 1
            if self.passes is not None and self.memory_batches > self.passes:
                self.waiting.set()
                await self.gate.wait()
        return self.embed_documents(texts)


@pytest.fixture
def embedders(monkeypatch: pytest.MonkeyPatch) -> dict[str, Metered]:
    """The embedders apps started from here get for the test models' names (any other name:
    the real embedder)."""
    made = {name: Metered(name) for name in (WIDE, NARROW, RENAMED)}
    monkeypatch.setattr(
        knowledge_module, "load_embedder", lambda name: made.get(name) or get_embedder(name)
    )
    return made


@pytest.fixture
async def database(embedded_pg: Any) -> AsyncIterator[str]:
    name = "switchboard_memory_reindex"
    async with await psycopg.AsyncConnection.connect(embedded_pg.uri(), autocommit=True) as db:
        await db.execute(f"DROP DATABASE IF EXISTS {name}")
        await db.execute(f"CREATE DATABASE {name}")
    try:
        yield embedded_pg.uri(name)
    finally:
        async with await psycopg.AsyncConnection.connect(embedded_pg.uri(), autocommit=True) as db:
            await db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        return await (await db.execute(query)).fetchall()  # type: ignore[arg-type]


async def _model(url: str) -> list[tuple[Any, ...]]:
    return await _rows(url, "SELECT model, dims FROM store_embedding_model")


async def _vectors(url: str) -> list[tuple[Any, ...]]:
    return await _rows(
        url,
        "SELECT split_part(prefix, '.', 3), key, field_name, vector_dims(embedding)"
        " FROM store_vectors ORDER BY prefix, key, field_name",
    )


async def _queued(url: str) -> list[tuple[Any, ...]]:
    return await _rows(
        url,
        "SELECT split_part(prefix, '.', 3), key, field_name FROM store_reindex"
        " ORDER BY prefix, key, field_name",
    )


async def _column(url: str) -> list[tuple[Any, ...]]:
    return await _rows(
        url,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'store_vectors'::regclass AND attname = 'embedding'",
    )


async def _wait_until_reindexed(url: str) -> None:
    for _ in range(400):
        if not await _queued(url):
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"still queued: {await _queued(url)}")


async def _register(client: httpx.AsyncClient) -> User:
    body = {"name": "Alice", "email": "alice@example.org", "password": PASSWORD}
    response = await client.post("/auth/register", json=body)
    assert response.status_code == 201, response.text
    return User(response.json(), PASSWORD)


async def _put(
    client: httpx.AsyncClient, user: User, namespace: str, key: str, **body: Any
) -> None:
    response = await client.put(
        "/store/items", json={"namespace": [namespace], "key": key, **body}, headers=user.headers
    )
    assert response.status_code == 204, response.text


async def _memories(client: httpx.AsyncClient, user: User, **params: Any) -> dict[str, Any]:
    response = await client.get("/users/me/memories", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _recall_agent(app: Any, client: httpx.AsyncClient) -> tuple[User, str]:
    await ensure_admin(
        app.state.switchboard.pool, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, name="Admin"
    )
    login = await client.post(
        "/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    admin = User(login.json(), ADMIN_PASSWORD)
    body = {"name": "Recall", "model_name": "fake:tools", "tools_enabled": ["recall"]}
    agent = await client.post("/agents/", json=body, headers=admin.headers)
    assert agent.status_code == 201, agent.text
    return admin, str(agent.json()["id"])


async def _recall(client: httpx.AsyncClient, user: User, agent_id: str, query: str) -> str:
    """What the ``recall`` tool answered (``fake:tools`` calls it with the message)."""
    chat = await client.post("/chats/", json={"agent_id": agent_id}, headers=user.headers)
    content = json.dumps({"query": query, "k": 1})
    sent = await client.post(
        f"/chats/{chat.json()['id']}/messages", json={"content": content}, headers=user.headers
    )
    assert sent.status_code == 201, sent.text
    [tool] = [m for m in sent.json()["messages"] if m["sender"] == "tool"]
    assert tool["metadata"]["is_error"] is False, tool
    return str(tool["content"])


async def test_a_new_model_reindexes_memories_in_the_background_across_a_restart(
    database: str, embedders: dict[str, Metered], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Memories made by the default model: a first start just records it.
    async with running(create_app(make_settings(database))) as client:
        user = await _register(client)
        for key, text in FACTS.items():
            await _put(client, user, "memories", key, value={"text": text})
        before = await _memories(client, user, query="what is my dog called")
        assert (before["items"][0]["key"], before["reindexing"]) == ("c-pet", False)
    assert await _model(database) == [(DEFAULT_EMBEDDING_MODEL, 256)]
    assert await _vectors(database) == [("memories", key, "text", 256) for key in FACTS]
    assert await _column(database) == [("halfvec(256)",)]

    # Started with a 32-dimensional model: the re-indexer makes one memory's vector (one at a
    # time), then waits in the middle of the second.
    monkeypatch.setattr(store_reindexer, "BATCH", 1)
    new = embedders[NARROW]
    new.passes = 1
    new.gate.clear()
    settings = make_settings(database, embedding_model=NARROW)
    second = create_app(settings)
    async with running(second) as client:
        async with asyncio.timeout(10):
            await new.waiting.wait()
        assert await _model(database) == [(NARROW, 32)]
        assert await _column(database) == [("halfvec(32)",)]
        assert await _vectors(database) == [("memories", "a-colour", "text", 32)]
        assert await _queued(database) == [
            ("memories", "b-city", "text"),
            ("memories", "c-pet", "text"),
        ]
        # Meanwhile a new memory is embedded by the new model at once.
        await _put(client, user, "memories", "d-violin", value={"text": "I play the violin"})

        # A search finds only the memories with a vector, and says so; a listing has them all.
        during = await _memories(client, user, query="what is my dog called")
        assert during["reindexing"] is True
        assert sorted(m["key"] for m in during["items"]) == ["a-colour", "d-violin"]
        assert during["total"] == 4
        listed = await _memories(client, user)
        assert [m["key"] for m in listed["items"]] == ["d-violin", "c-pet", "b-city", "a-colour"]
        assert listed["reindexing"] is False

        _, agent_id = await _recall_agent(second, client)
        recalled = await _recall(client, user, agent_id, "favourite colour blue")
        assert recalled == f"{REINDEXING_NOTE}\n- My favourite colour is blue"
        # Another user's memories are not being re-indexed: no note for them.
        other = await client.post(
            "/auth/register",
            json={"name": "Bob", "email": "bob@example.org", "password": PASSWORD},
        )
        bob = User(other.json(), PASSWORD)
        assert await _recall(client, bob, agent_id, "favourite colour") == (
            "Nothing is remembered about that."
        )
        assert (await _memories(client, bob, query="colour"))["reindexing"] is False
    # Stopped in the middle of a batch: it is rolled back, still queued.
    assert await _queued(database) == [
        ("memories", "b-city", "text"),
        ("memories", "c-pet", "text"),
    ]

    # The next start finishes the work.
    new.passes = None
    new.gate.set()
    async with running(create_app(settings)) as client:
        await _wait_until_reindexed(database)
        after = await _memories(client, user, query="what is my dog called")
        assert (after["items"][0]["key"], after["reindexing"]) == ("c-pet", False)
        assert len(after["items"]) == 4
        assert await _recall(client, user, agent_id, "favourite colour blue") == (
            "- My favourite colour is blue"
        )
    assert await _vectors(database) == [
        ("memories", key, "text", 32) for key in ("a-colour", "b-city", "c-pet", "d-violin")
    ]
    assert await _model(database) == [(NARROW, 32)]


async def test_a_renamed_model_of_the_same_size_reindexes_every_indexed_field(
    database: str, embedders: dict[str, Metered]
) -> None:
    async with running(create_app(make_settings(database, embedding_model=WIDE))) as client:
        user = await _register(client)
        await _put(client, user, "memories", "a-colour", value={"text": FACTS["a-colour"]})
        await _put(client, user, "memories", "gone", value={"text": "Deleted while queued"})
        # Fields other than `text`, and a path that finds several texts (one vector each).
        note = {"title": "Violin lessons", "tags": ["music", "weekly"]}
        await _put(client, user, "notes", "n", value=note, index=["title", "tags[*]"])
        await _put(client, user, "notes", "plain", value={"text": "not indexed"}, index=False)
    indexed = [
        ("memories", "a-colour", "text"),
        ("memories", "gone", "text"),
        ("notes", "n", "tags[*].0"),
        ("notes", "n", "tags[*].1"),
        ("notes", "n", "title"),
    ]
    assert await _vectors(database) == [(*vector, 32) for vector in indexed]

    # Three processes start at once with another model of the same size.
    await asyncio.gather(*(upgrade_database(database, RENAMED) for _ in range(3)))
    assert await _model(database) == [(RENAMED, 32)]
    assert await _queued(database) == indexed
    assert await _vectors(database) == []
    assert await _column(database) == [("halfvec(32)",)]
    await _rows(database, "DELETE FROM store WHERE key = 'gone' RETURNING key")

    renamed = embedders[RENAMED]
    async with running(create_app(make_settings(database, embedding_model=RENAMED))) as client:
        await _wait_until_reindexed(database)
        found = await client.post(
            "/store/items/search",
            json={"namespace_prefix": ["notes"], "query": "violin lessons"},
            headers=user.headers,
        )
        assert [item["key"] for item in found.json()["items"]] == ["n"]
        memories = await _memories(client, user, query="favourite colour")
        assert ([m["key"] for m in memories["items"]], memories["reindexing"]) == (
            ["a-colour"],
            False,
        )
    # Made again by the new model, the deleted item's skipped, the unindexed item untouched.
    assert await _vectors(database) == [(*vector, 32) for vector in indexed if vector[1] != "gone"]
    assert renamed.memory_batches == 1


async def test_a_store_from_before_models_were_recorded_keeps_vectors_of_the_models_size(
    database: str, embedders: dict[str, Metered]
) -> None:
    async with running(create_app(make_settings(database, embedding_model=WIDE))) as client:
        user = await _register(client)
        await _put(client, user, "memories", "a-colour", value={"text": FACTS["a-colour"]})
    forget = "DELETE FROM store_embedding_model RETURNING model"
    assert await _rows(database, forget) == [(WIDE,)]
    # Vectors of the configured model's size: taken to be its own, as before models were recorded.
    await upgrade_database(database, RENAMED)
    assert (await _model(database), await _queued(database)) == ([(RENAMED, 32)], [])
    assert await _vectors(database) == [("memories", "a-colour", "text", 32)]
    # Of another size: made again.
    assert await _rows(database, forget) == [(RENAMED,)]
    await upgrade_database(database, DEFAULT_EMBEDDING_MODEL)
    assert await _model(database) == [(DEFAULT_EMBEDDING_MODEL, 256)]
    assert await _queued(database) == [("memories", "a-colour", "text")]
    assert (await _vectors(database), await _column(database)) == ([], [("halfvec(256)",)])
