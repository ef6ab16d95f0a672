"""Knowledge (issue 14): documents of agents and files of chats, read at upload, indexed in the
background (surviving a restart), searched hybrid, isolated per agent, chat and user in the SQL
itself, cited by the ``knowledge_search`` tool, re-indexed after a model change, and deleted with
whatever owns them."""

from __future__ import annotations

import asyncio
import json
import uuid
import zipfile
from io import BytesIO
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg.rows import dict_row

from api.app import create_app
from api.bootstrap import upgrade_database
from api.limits import BodyLimit
from api.services.auth import ensure_admin
from api.services.knowledge_indexer import split
from graphs import knowledge as knowledge_module
from graphs.catalog import FINANCE_GLOSSARY
from graphs.knowledge import Knowledge, fuse
from storage import knowledge as knowledge_store
from storage import pgvector
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, User, assert_error, make_settings, running
from tests.knowledge_helpers import HashEmbedder, make_docx, make_pdf, upload, wait_indexed
from tests.sse import parse
from tests.test_messages import SSE, MakeAgent, make_agent, open_chat

__all__ = ["make_agent"]

MODEL, OTHER_MODEL = "test:hash-64", "test:hash-32"
PARIS = "Paris is the capital of France. The Eiffel Tower was finished in 1889."
TOKYO = "Tokyo is the capital of Japan. Mount Fuji is its highest mountain."
SECRET = "The launch code of project Zephyr is amber falcon."


@pytest.fixture(autouse=True)
def embedders(monkeypatch: pytest.MonkeyPatch, app: FastAPI) -> dict[str, HashEmbedder]:
    """The deterministic test embedders, and the running app searching with the first."""
    made = {MODEL: HashEmbedder(MODEL, 64), OTHER_MODEL: HashEmbedder(OTHER_MODEL, 32)}
    # Any other name (the configured default) is the first test embedder too.
    monkeypatch.setattr(knowledge_module, "load_embedder", lambda name: made.get(name, made[MODEL]))
    monkeypatch.setattr(app.state.switchboard.runs.knowledge, "model", MODEL)
    return made


async def _rows(database_url: str, query: str, *params: Any) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=dict_row
    ) as conn:
        cur = await conn.execute(query, params)  # type: ignore[arg-type]
        return await cur.fetchall()


async def _count(database_url: str, table: str) -> int:
    return (await _rows(database_url, f"SELECT count(*) AS n FROM {table}"))[0]["n"]  # noqa: S608 (a table name of this file)


async def _agent_doc(
    client: httpx.AsyncClient, admin: User, agent_id: str, title: str, text: str
) -> dict[str, Any]:
    response = await client.post(
        f"/agents/{agent_id}/knowledge", json={"title": title, "text": text}, headers=admin.headers
    )
    assert response.status_code == 202, response.text
    return response.json()


async def _search(
    client: httpx.AsyncClient, who: User, agent_id: str, query: str, **extra: Any
) -> httpx.Response:
    return await client.post(
        f"/agents/{agent_id}/knowledge/search", json={"query": query, **extra}, headers=who.headers
    )


# Uploads.

ZIP_WITHOUT_WORD = BytesIO()
with zipfile.ZipFile(ZIP_WITHOUT_WORD, "w") as _archive:
    _archive.writestr("content.xml", "<x/>")

BAD_UPLOADS = [
    ("tool.exe", b"MZ\x90\x00", 415, "unsupported_media_type"),
    ("notes", b"no extension", 415, "unsupported_media_type"),
    ("image.png", b"\x89PNG\r\n", 415, "unsupported_media_type"),
    ("fake.pdf", b"hello, I am text", 422, "unparseable_document"),
    ("broken.pdf", b"%PDF-1.4\n garbage garbage", 422, "unparseable_document"),
    ("fake.docx", b"plain text, not a zip", 422, "unparseable_document"),
    ("other.docx", ZIP_WITHOUT_WORD.getvalue(), 422, "unparseable_document"),
    ("latin1.txt", "café".encode("latin-1"), 422, "unparseable_document"),
    ("binary.md", b"abc\x00def", 422, "unparseable_document"),
    ("page.html", b"<p>\xff\xfe</p>", 422, "unparseable_document"),
    ("empty.txt", b"", 422, "empty_document"),
    ("blank.md", b"  \n\t \n", 422, "empty_document"),
    ("blank.html", b"<html><body>  <p> </p></body></html>", 422, "empty_document"),
    ("blank.pdf", make_pdf(""), 422, "empty_document"),
    ("blank.docx", make_docx(["", "  "]), 422, "empty_document"),
]


@pytest.mark.parametrize(("filename", "data", "status", "code"), BAD_UPLOADS)
async def test_a_bad_upload_is_a_clear_4xx_and_stores_nothing(
    client: httpx.AsyncClient,
    admin: User,
    seeded_agents: dict[str, Any],
    database_url: str,
    filename: str,
    data: bytes,
    status: int,
    code: str,
) -> None:
    agent_id = seeded_agents["assistant"]["id"]
    before = await _count(database_url, "knowledge_documents")
    response = await upload(client, admin, f"/agents/{agent_id}/knowledge", filename, data)
    assert_error(response, status, code)
    assert await _count(database_url, "knowledge_documents") == before


async def test_malformed_requests_are_4xx_json_and_store_nothing(
    client: httpx.AsyncClient, admin: User, seeded_agents: dict[str, Any], database_url: str
) -> None:
    agent_id = seeded_agents["assistant"]["id"]
    path = f"/agents/{agent_id}/knowledge"
    before = await _count(database_url, "knowledge_documents")
    no_file = await client.post(
        path, data={"title": "x"}, files={"other": ("a.txt", b"hi")}, headers=admin.headers
    )
    assert_error(no_file, 422, "missing_file")
    text_as_file = await client.post(
        path, files={"file": (None, "just a field")}, headers=admin.headers
    )
    assert_error(text_as_file, 422, "missing_file")
    blank_title = await upload(client, admin, path, "a.txt", b"hello", title="   ")
    assert_error(blank_title, 422, "invalid_title")
    plain = await client.post(
        path, content=b"hello", headers={**admin.headers, "Content-Type": "text/plain"}
    )
    assert_error(plain, 415, "unsupported_media_type")
    for body in (
        {"title": "x"},
        {"title": "x", "text": "  "},
        {"title": "x", "text": 5},
        {"title": "x", "text": "a\u0000b"},
        {"title": "", "text": "ok"},
        {"title": "x", "text": "ok", "extra": 1},
        [],
    ):
        response = await client.post(path, json=body, headers=admin.headers)
        assert_error(response, 422, "validation_error")
    broken = await client.post(
        path, content=b"{not json", headers={**admin.headers, "Content-Type": "application/json"}
    )
    assert_error(broken, 422, "invalid_json")
    garbage = await client.post(
        path,
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n',
        headers={**admin.headers, "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert garbage.status_code in (400, 422), garbage.text
    assert_error(garbage, garbage.status_code)
    assert await _count(database_url, "knowledge_documents") == before


async def test_uploads_over_the_limit_are_413_and_the_routes_take_more_than_the_global_limit(
    client: httpx.AsyncClient, admin: User, seeded_agents: dict[str, Any], database_url: str
) -> None:
    agent_id = seeded_agents["assistant"]["id"]
    path = f"/agents/{agent_id}/knowledge"
    before = await _count(database_url, "knowledge_documents")
    too_big = await upload(client, admin, path, "big.txt", b"a" * (10 * 1_048_576 + 1))
    assert_error(too_big, 413, "payload_too_large")
    assert await _count(database_url, "knowledge_documents") == before
    # Two MiB: over the global 1 MiB body limit, under this route's 10 MiB.
    large = await upload(client, admin, path, "large.txt", b"word " * 400_000)
    assert large.status_code == 202, large.text
    assert large.json()["bytes"] == 2_000_000
    # The limit is the upload routes' only: a search body of 2 MiB is still refused.
    search = await client.post(
        f"{path}/search",
        content=b"x" * 2_000_000,
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    assert_error(search, 413, "payload_too_large")


def test_the_body_limit_matches_route_templates_one_segment_per_parameter() -> None:
    limit = BodyLimit(
        app=None,  # type: ignore[arg-type]
        max_bytes=10,
        routes={("POST", "/chats/import"): 50, ("POST", "/agents/{agent_id}/knowledge"): 99},
    )
    assert limit.limit_for("POST", "/chats/import") == 50
    assert limit.limit_for("POST", "/agents/abc/knowledge") == 99
    assert limit.limit_for("POST", "/agents/a.b-c%20/knowledge") == 99
    for path in (
        "/agents//knowledge",
        "/agents/a/b/knowledge",
        "/agents/a/knowledge/search",
        "/agents/a/knowledge/",
        "/xagents/a/knowledge",
        "/agents/a/knowledgex",
    ):
        assert limit.limit_for("POST", path) == 10, path
    assert limit.limit_for("GET", "/agents/abc/knowledge") == 10
    assert limit.limit_for("POST", "/chats/import/") == 10


async def test_every_type_is_read_indexed_and_found(
    client: httpx.AsyncClient, admin: User, user: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent()
    path = f"/agents/{agent['id']}/knowledge"
    files = {
        "paris.txt": PARIS.encode(),
        "tokyo.md": f"# Japan\n\n{TOKYO}".encode(),
        "nile.pdf": make_pdf("The Nile flows north through Egypt into the Mediterranean Sea."),
        "amazon.docx": make_docx(["The Amazon rainforest covers much of Brazil."]),
        "sahara.html": b"<html><head><title>t</title></head><body><h1>Sahara</h1>"
        b"<p>The Sahara is the largest hot desert, in North Africa.</p></body></html>",
    }
    created = {}
    for filename, data in files.items():
        response = await upload(client, admin, path, filename, data)
        assert response.status_code == 202, response.text
        body = response.json()
        assert (body["status"], body["chunk_count"], body["bytes"]) == ("pending", 0, len(data))
        assert body["agent_id"] == agent["id"] and body["chat_id"] is None
        created[filename] = body
    assert created["nile.pdf"]["media_type"] == "application/pdf"
    assert created["sahara.html"]["title"] == "sahara"
    pasted = await _agent_doc(
        client, admin, agent["id"], "Pasted", "Mount Kilimanjaro is in Tanzania."
    )
    assert (pasted["media_type"], pasted["filename"]) == ("text/plain", None)

    items = await wait_indexed(client, admin, path, 6)
    assert [item["status"] for item in items] == ["indexed"] * 6
    assert all(item["chunk_count"] == 1 and item["embedding_model"] == MODEL for item in items)
    for query, filename in [
        ("Which river flows north through Egypt?", "nile.pdf"),
        ("Amazon rainforest Brazil", "amazon.docx"),
        ("largest hot desert", "sahara.html"),
        ("capital of Japan", "tokyo.md"),
        ("Eiffel Tower", "paris.txt"),
    ]:
        found = await _search(client, user, agent["id"], query, k=3)
        assert found.status_code == 200, found.text
        body = found.json()
        assert (body["indexing"], body["reindexing"]) == (False, False)
        assert body["items"][0]["document_id"] == created[filename]["id"], (query, body)
    top = (await _search(client, user, agent["id"], "Kilimanjaro Tanzania", k=1)).json()["items"]
    assert len(top) == 1
    assert top[0]["title"] == "Pasted"
    assert top[0]["text"] == "Mount Kilimanjaro is in Tanzania."


async def test_duplicates_are_409_naming_the_document(
    client: httpx.AsyncClient, admin: User, make_agent: MakeAgent, database_url: str
) -> None:
    agent, other = await make_agent(), await make_agent()
    first = await _agent_doc(client, admin, agent["id"], "Paris", PARIS)
    again = await upload(client, admin, f"/agents/{agent['id']}/knowledge", "p.txt", PARIS.encode())
    body = assert_error(again, 409, "duplicate_document")
    assert first["id"] in body["detail"] and "'Paris'" in body["detail"]
    # The same text in another agent is another document.
    await _agent_doc(client, admin, other["id"], "Paris", PARIS)
    rows = await _rows(
        database_url, "SELECT agent_id FROM knowledge_documents WHERE title = 'Paris'"
    )
    assert sorted(str(r["agent_id"]) for r in rows) == sorted([agent["id"], other["id"]])


async def test_the_seeded_finance_agent_has_a_glossary_it_finds(
    app: FastAPI, client: httpx.AsyncClient, user: User, seeded_agents: dict[str, Any]
) -> None:
    finance = seeded_agents["personal-finance"]
    assert finance["tools_enabled"] == ["calculator", "knowledge_search"]
    app.state.switchboard.indexer.wake()
    for _ in range(400):
        found = (
            await _search(client, user, finance["id"], "pay the highest interest rate debt first")
        ).json()
        if found["items"]:
            break
        await asyncio.sleep(0.025)
    assert found["indexing"] is False
    assert {item["title"] for item in found["items"]} == {"Personal finance glossary"}
    assert any("avalanche" in item["text"].lower() for item in found["items"][:2])
    assert len(found["items"]) == len(split(FINANCE_GLOSSARY))


def test_reciprocal_rank_fusion_sums_over_rankings() -> None:
    a, b, c = (uuid.UUID(int=n) for n in (1, 2, 3))

    def hit(chunk: uuid.UUID) -> Any:
        return {"chunk_id": chunk, "document_id": chunk, "title": "t", "text": "x", "score": 0.0}

    fused = fuse([[hit(a), hit(b)], [hit(b), hit(c)]], 2)
    assert [item["chunk_id"] for item in fused] == [b, a]
    assert fused[0]["score"] == round(1 / 62 + 1 / 61, 6)
    assert fused[1]["score"] == round(1 / 61, 6)


# Isolation.


async def _isolated(
    knowledge: Knowledge,
    mine: str,
    theirs: str,
    my_chat: str,
    their_chat: str,
    user: User,
    other_user: User,
) -> None:
    """No search that names another user's chat finds its files, whatever ids it combines."""
    for agent_id, chat_id, user_id in [
        (mine, their_chat, user.id),
        (mine, their_chat, None),
        (theirs, their_chat, user.id),
        (mine, my_chat, other_user.id),
    ]:
        result = await knowledge.search(
            query="safe combination zephyr amber",
            k=20,
            agent_id=uuid.UUID(agent_id),
            chat_id=uuid.UUID(chat_id),
            user_id=uuid.UUID(user_id) if user_id else None,
        )
        titles = {item["title"] for item in result.items}
        assert "z" not in titles, (agent_id, chat_id, user_id)
        assert titles == ({"Zephyr"} if agent_id == theirs else {"Paris"})


async def test_agents_chats_and_users_never_see_each_others_documents(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: User,
    user: User,
    other_user: User,
    make_agent: MakeAgent,
    database_url: str,
) -> None:
    mine, theirs = await make_agent(), await make_agent()
    await _agent_doc(client, admin, theirs["id"], "Zephyr", SECRET)
    await _agent_doc(client, admin, mine["id"], "Paris", PARIS)
    my_chat = await open_chat(client, user, mine["id"])
    their_chat = await open_chat(client, other_user, mine["id"])
    filed = await upload(
        client,
        other_user,
        f"/chats/{their_chat}/files",
        "z.txt",
        b"Bob's private note: the safe combination is 4-8-15.",
    )
    assert filed.status_code == 202, filed.text
    await wait_indexed(client, admin, f"/agents/{theirs['id']}/knowledge", 1)
    await wait_indexed(client, admin, f"/agents/{mine['id']}/knowledge", 1)
    await wait_indexed(client, other_user, f"/chats/{their_chat}/files", 1)

    adversarial = [
        "launch code of project Zephyr amber falcon",
        "safe combination",
        "' OR 1=1 --",
        '"amber falcon" or zephyr -paris',
        "zephyr); DROP TABLE knowledge_chunks; --",
        "*:* | ! & <-> :",
        "ゼファー",
        "a" * 2000,
    ]
    for query in adversarial:
        found = await _search(client, user, mine["id"], query, k=20, chat_id=my_chat)
        assert found.status_code == 200, (query, found.text)
        assert {item["title"] for item in found.json()["items"]} <= {"Paris"}, query
    # Someone else's chat is a 404, with or without files, as one that does not exist.
    stolen = await _search(client, user, mine["id"], "safe combination", chat_id=their_chat)
    missing = await _search(client, user, mine["id"], "safe combination", chat_id=str(uuid.uuid4()))
    assert assert_error(stolen, 404, "not_found") == assert_error(missing, 404, "not_found")
    # The owner finds their file with their chat, and not without it.
    own = (
        await _search(client, other_user, mine["id"], "safe combination", chat_id=their_chat)
    ).json()
    assert own["items"][0]["title"] == "z"
    without = (await _search(client, other_user, mine["id"], "safe combination", k=20)).json()
    assert {item["title"] for item in without["items"]} == {"Paris"}

    # At the SQL level, whatever ids a caller combines: another user's chat adds nothing.
    pool = app.state.switchboard.pool
    for knowledge in (Knowledge(pool, MODEL), Knowledge(pool, MODEL, hybrid=True)):
        await _isolated(knowledge, mine["id"], theirs["id"], my_chat, their_chat, user, other_user)

    # Bad search input: a 4xx JSON error, never a 500.
    for body in (
        {"query": ""},
        {"query": "x", "k": 21},
        {"query": "x", "k": 0},
        {"query": "x", "k": 10**30},
        {"query": "x", "k": "5"},
        {"query": "a\u0000b"},
        {"query": "x", "chat_id": "nope"},
        {"query": "x" * 2001},
        {"q": "x"},
    ):
        response = await client.post(
            f"/agents/{mine['id']}/knowledge/search", json=body, headers=user.headers
        )
        assert_error(response, 422, "validation_error")
    gone = await _search(client, user, str(uuid.uuid4()), "x")
    assert_error(gone, 404, "not_found")


async def test_chat_files_are_their_owners_alone(
    client: httpx.AsyncClient,
    user: User,
    other_user: User,
    seeded_agents: dict[str, Any],
    database_url: str,
) -> None:
    chat = await open_chat(client, user, seeded_agents["assistant"]["id"])
    path = f"/chats/{chat}/files"
    before = await _count(database_url, "knowledge_documents")
    refused = await upload(client, other_user, path, "x.txt", b"intruder")
    assert_error(refused, 404, "not_found")
    assert await _count(database_url, "knowledge_documents") == before
    mine = await upload(client, user, path, "mine.txt", b"my notes about gardening")
    assert mine.status_code == 202, mine.text
    file_id = mine.json()["id"]
    assert mine.json()["chat_id"] == chat
    assert_error(await client.get(path, headers=other_user.headers), 404, "not_found")
    assert_error(await client.delete(f"{path}/{file_id}", headers=other_user.headers), 404)
    items = await wait_indexed(client, user, path, 1)
    assert [item["id"] for item in items] == [file_id]
    deleted = await client.delete(f"{path}/{file_id}", headers=user.headers)
    assert deleted.status_code == 204
    assert_error(await client.delete(f"{path}/{file_id}", headers=user.headers), 404)
    assert (await client.get(path, headers=user.headers)).json()["items"] == []


# The tool.


async def _tool_agent(
    client: httpx.AsyncClient, admin: User, make_agent: MakeAgent
) -> dict[str, Any]:
    agent = await make_agent("fake:tools", ["knowledge_search"])
    await _agent_doc(client, admin, agent["id"], "Paris", PARIS)
    await _agent_doc(client, admin, agent["id"], "Tokyo", TOKYO)
    await wait_indexed(client, admin, f"/agents/{agent['id']}/knowledge", 2)
    return agent


async def test_the_tool_answers_with_citations_in_the_stream_and_the_history(
    client: httpx.AsyncClient, admin: User, user: User, make_agent: MakeAgent
) -> None:
    agent = await _tool_agent(client, admin, make_agent)
    chat = await open_chat(client, user, agent["id"])
    filed = await upload(
        client,
        user,
        f"/chats/{chat}/files",
        "fuji.txt",
        b"Climbing Mount Fuji takes about six hours from the fifth station.",
    )
    assert filed.status_code == 202
    await wait_indexed(client, user, f"/chats/{chat}/files", 1)
    question = json.dumps({"query": "Mount Fuji climbing hours", "k": 2})
    response = await client.post(
        f"/chats/{chat}/messages", json={"content": question}, headers={**user.headers, **SSE}
    )
    events, _ = parse(response.text)
    call = next(e.data for e in events if e.event == "tool_call")
    assert (call["name"], call["args"]) == (
        "knowledge_search",
        {"query": "Mount Fuji climbing hours", "k": 2},
    )
    result = next(e.data for e in events if e.event == "tool_result")
    assert result["is_error"] is False
    assert "[1] fuji (citation: " in result["content"]
    messages = [e.data for e in events if e.event == "message"]
    answer = messages[-1]
    assert answer["sender"] == "agent"
    citations = answer["metadata"]["citations"]
    assert [c["title"] for c in citations] == ["fuji", "Tokyo"]
    assert citations[0]["document_id"] == filed.json()["id"]
    assert set(citations[0]) == {"document_id", "title", "chunk_id"}
    assert f"(citation: {citations[0]['chunk_id']})" in answer["content"]
    # The tool call's own message and the tool result carry none; the history the same.
    assert all("citations" not in m["metadata"] for m in messages[:-1])
    history = (await client.get(f"/chats/{chat}/messages", headers=user.headers)).json()["items"]
    assert history[-1]["metadata"]["citations"] == citations
    # An export keeps them, and its import brings them back.
    export = await client.get(f"/chats/{chat}/export", headers=user.headers)
    imported = await client.post(
        "/chats/import",
        content=export.content,
        headers={**user.headers, "Content-Type": "application/jsonl"},
    )
    assert imported.status_code == 201, imported.text
    copy = imported.json()["chats"][0]["id"]
    copied = (await client.get(f"/chats/{copy}/messages", headers=user.headers)).json()["items"]
    assert copied[-1]["metadata"]["citations"] == citations
    # A later turn without a search cites nothing.
    agent_only = await make_agent("fake:echo", ["knowledge_search"])
    echo_chat = await open_chat(client, user, agent_only["id"])
    plain = await client.post(
        f"/chats/{echo_chat}/messages", json={"content": "hi"}, headers=user.headers
    )
    assert "citations" not in plain.json()["messages"][-1]["metadata"]


async def test_the_tool_ignores_ids_the_model_passes(
    client: httpx.AsyncClient, admin: User, user: User, other_user: User, make_agent: MakeAgent
) -> None:
    agent = await _tool_agent(client, admin, make_agent)
    other_agent = await make_agent()
    await _agent_doc(client, admin, other_agent["id"], "Zephyr", SECRET)
    their_chat = await open_chat(client, other_user, agent["id"])
    await upload(
        client,
        other_user,
        f"/chats/{their_chat}/files",
        "z.txt",
        b"launch code amber falcon zephyr",
    )
    await wait_indexed(client, admin, f"/agents/{other_agent['id']}/knowledge", 1)
    await wait_indexed(client, other_user, f"/chats/{their_chat}/files", 1)
    chat = await open_chat(client, user, agent["id"])
    question = json.dumps(
        {
            "query": "launch code project zephyr amber falcon",
            "k": 20,
            "agent_id": other_agent["id"],
            "chat_id": their_chat,
            "user_id": other_user.id,
        }
    )
    answer = await client.post(
        f"/chats/{chat}/messages", json={"content": question}, headers=user.headers
    )
    assert answer.status_code == 201, answer.text
    messages = answer.json()["messages"]
    tool = next(m for m in messages if m["sender"] == "tool")
    assert tool["metadata"]["is_error"] is False
    assert "amber" not in tool["content"] and "Zephyr" not in tool["content"]
    titles = {c["title"] for c in messages[-1]["metadata"]["citations"]}
    assert titles == {"Paris", "Tokyo"}


async def test_the_tool_says_when_documents_are_still_indexing(
    client: httpx.AsyncClient,
    admin: User,
    user: User,
    make_agent: MakeAgent,
    embedders: dict[str, HashEmbedder],
) -> None:
    agent = await _tool_agent(client, admin, make_agent)
    embedders[MODEL].gate.clear()
    try:
        await _agent_doc(client, admin, agent["id"], "Later", "Something indexed later.")
        chat = await open_chat(client, user, agent["id"])
        answer = await client.post(
            f"/chats/{chat}/messages", json={"content": "capital"}, headers=user.headers
        )
        tool = next(m for m in answer.json()["messages"] if m["sender"] == "tool")
        assert tool["content"].startswith("Note: some documents are still being indexed")
        found = (await _search(client, user, agent["id"], "capital")).json()
        assert (found["indexing"], found["reindexing"]) == (True, False)
    finally:
        embedders[MODEL].gate.set()


# Re-indexing.


async def test_a_model_change_reindexes_in_the_background_and_searches_say_so(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: User,
    user: User,
    make_agent: MakeAgent,
    embedders: dict[str, HashEmbedder],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The one document to index again (the seeded glossary would be taken first).
    await _rows(database_url, "DELETE FROM knowledge_documents RETURNING id")
    agent = await make_agent()
    path = f"/agents/{agent['id']}/knowledge"
    doc = await _agent_doc(client, admin, agent["id"], "Paris", PARIS)
    await wait_indexed(client, admin, path, 1)
    embedders[OTHER_MODEL].gate.clear()
    monkeypatch.setattr(app.state.switchboard.runs.knowledge, "model", OTHER_MODEL)
    try:
        app.state.switchboard.indexer.wake()
        for _ in range(400):
            if embedders[OTHER_MODEL].calls:
                break
            await asyncio.sleep(0.025)
        during = (await _search(client, user, agent["id"], "Eiffel Tower")).json()
        assert during == {"items": [], "indexing": True, "reindexing": True}
        listed = (await client.get(path, headers=admin.headers)).json()["items"]
        assert (listed[0]["status"], listed[0]["embedding_model"]) == ("indexing", MODEL)
    finally:
        embedders[OTHER_MODEL].gate.set()
    items = await wait_indexed(client, admin, path, 1)
    assert (items[0]["status"], items[0]["embedding_model"]) == ("indexed", OTHER_MODEL)
    after = (await _search(client, user, agent["id"], "Eiffel Tower")).json()
    assert (after["indexing"], after["reindexing"]) == (False, False)
    assert after["items"][0]["document_id"] == doc["id"]
    chunks = await _rows(
        database_url,
        "SELECT embedding_model, vector_dims(embedding::vector) AS dims "
        "FROM knowledge_chunks WHERE document_id = %s",
        doc["id"],
    )
    assert chunks == [{"embedding_model": OTHER_MODEL, "dims": 32}]


async def test_the_vector_search_reads_only_the_scopes_chunks_through_an_index(
    client: httpx.AsyncClient, admin: User, make_agent: MakeAgent, database_url: str
) -> None:
    agent = await make_agent()
    await _agent_doc(client, admin, agent["id"], "Paris", PARIS)
    await wait_indexed(client, admin, f"/agents/{agent['id']}/knowledge", 1)
    params = {
        "agent_id": uuid.UUID(agent["id"]), "chat_id": uuid.uuid4(), "user_id": uuid.uuid4(),
        "vector": knowledge_store.vector_literal([0.125] * 64), "limit": 5, "query": "paris",
        "model": MODEL,
    }  # fmt: skip
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for query in (knowledge_store.vector_search_sql(MODEL, 64), knowledge_store.TEXT_SEARCH):
            async with conn.transaction():
                await conn.execute("SET LOCAL enable_seqscan = off")
                text = query if isinstance(query, str) else query.as_string(conn)
                cur = await conn.execute("EXPLAIN (FORMAT JSON) " + text, params)
                plan = json.dumps((await cur.fetchone())[0])  # type: ignore[index]
            assert '"Seq Scan"' not in plan, plan
            assert "knowledge_chunks_" in plan


async def test_the_indexer_makes_an_hnsw_index_exactly_when_pgvector_can(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: User,
    user: User,
    make_agent: MakeAgent,
    database_url: str,
) -> None:
    # SWITCHBOARD_KNOWLEDGE_HNSW=auto (the tests' setting): the test database is the wheel's
    # Postgres, whose own pgvector crashes building HNSW without AVX-512. `.ci/run` builds
    # pgvector for the CPU first (`switchboard db build-pgvector`), so CI takes the first branch.
    wheel = pgvector.wheel_libdir()
    assert wheel is not None
    can = pgvector.AVX512 <= pgvector.cpu_flags() or pgvector.is_portable(wheel)
    assert app.state.switchboard.settings.knowledge_hnsw == "auto"
    assert app.state.switchboard.indexer.hnsw is can
    agent = await make_agent()
    doc = await _agent_doc(client, admin, agent["id"], "Paris", PARIS)
    await wait_indexed(client, admin, f"/agents/{agent['id']}/knowledge", 1)
    indexes = await _rows(
        database_url,
        "SELECT indexname FROM pg_indexes WHERE tablename = 'knowledge_chunks' AND indexname = %s",
        knowledge_store.index_name(MODEL, 64),
    )
    assert len(indexes) == (1 if can else 0)
    found = (await _search(client, user, agent["id"], "Eiffel Tower")).json()
    assert found["items"][0]["document_id"] == doc["id"]
    if can:
        # The search's plan can go through the model's HNSW index: its expression, operator
        # class and predicate match the query's. (On a table holding many agents' chunks the
        # planner rightly prefers the agent's own btree and a sort: sorts are priced out here.)
        params = {
            "agent_id": uuid.UUID(agent["id"]), "chat_id": uuid.uuid4(),
            "user_id": uuid.uuid4(), "vector": knowledge_store.vector_literal([0.125] * 64),
            "limit": 5, "model": MODEL,
        }  # fmt: skip
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            async with conn.transaction():
                await conn.execute("SET LOCAL enable_seqscan = off")
                await conn.execute("SET LOCAL enable_sort = off")
                query = knowledge_store.vector_search_sql(MODEL, 64).as_string(conn)
                cur = await conn.execute("EXPLAIN (FORMAT JSON) " + query, params)
                plan = json.dumps((await cur.fetchone())[0])  # type: ignore[index]
        assert knowledge_store.index_name(MODEL, 64) in plan, plan


def test_the_hnsw_index_has_the_searchs_cast_and_predicate() -> None:
    # Its expression and predicate are the search's own, so the search can use it.
    ddl = str(knowledge_store.vector_index_ddl(MODEL, 64).as_string(None))
    search = str(knowledge_store.vector_search_sql(MODEL, 64).as_string(None))
    assert "USING hnsw ((embedding::halfvec(64)) halfvec_cosine_ops)" in ddl
    assert ddl.endswith("WHERE embedding_model = 'test:hash-64'")
    assert "c.embedding::halfvec(64) <=> %(vector)s::halfvec(64)" in search
    assert "WHERE c.embedding_model = 'test:hash-64' AND" in search
    assert len(knowledge_store.index_name("openai:" + "x" * 200, 3072)) <= 63


# Deletion.


async def test_deleting_a_document_a_chat_an_agent_or_a_user_deletes_their_chunks(
    client: httpx.AsyncClient, admin: User, user: User, make_agent: MakeAgent, database_url: str
) -> None:
    agent, kept = await make_agent(), await make_agent()
    doc = await _agent_doc(client, admin, agent["id"], "Paris", PARIS)
    other = await _agent_doc(client, admin, agent["id"], "Tokyo", TOKYO)
    await _agent_doc(client, admin, kept["id"], "Kept", SECRET)
    chat = await open_chat(client, user, kept["id"])
    await upload(client, user, f"/chats/{chat}/files", "a.txt", b"alpha notes")
    second = await open_chat(client, user, kept["id"])
    await upload(client, user, f"/chats/{second}/files", "b.txt", b"beta notes")
    await wait_indexed(client, admin, f"/agents/{agent['id']}/knowledge", 2)
    await wait_indexed(client, user, f"/chats/{chat}/files", 1)
    await wait_indexed(client, user, f"/chats/{second}/files", 1)
    await wait_indexed(client, admin, f"/agents/{kept['id']}/knowledge", 1)

    async def chunks(column: str, value: str) -> int:
        rows = await _rows(
            database_url,
            f"SELECT count(*) AS n FROM knowledge_chunks WHERE {column} = %s",  # noqa: S608
            value,
        )
        return rows[0]["n"]

    assert await chunks("document_id", doc["id"]) == 1
    deleted = await client.delete(
        f"/agents/{agent['id']}/knowledge/{doc['id']}", headers=admin.headers
    )
    assert deleted.status_code == 204
    assert await chunks("document_id", doc["id"]) == 0
    assert await chunks("document_id", other["id"]) == 1
    assert_error(
        await client.delete(f"/agents/{kept['id']}/knowledge/{other['id']}", headers=admin.headers),
        404,
    )

    # Retiring the agent deletes its documents (its chats stay readable).
    assert (await client.delete(f"/agents/{agent['id']}", headers=admin.headers)).status_code == 204
    assert await chunks("agent_id", agent["id"]) == 0
    assert (
        await _rows(
            database_url, "SELECT id FROM knowledge_documents WHERE agent_id = %s", agent["id"]
        )
        == []
    )

    assert await chunks("chat_id", chat) == 1
    assert (await client.delete(f"/chats/{chat}", headers=user.headers)).status_code == 204
    assert await chunks("chat_id", chat) == 0
    assert await chunks("chat_id", second) == 1

    # A user deleting their account: their chats' files go; an agent's document they
    # uploaded stays.
    for who in (user, admin):
        gone = await client.request(
            "DELETE", "/users/me", json={"password": who.password}, headers=who.headers
        )
        assert gone.status_code == 204, gone.text
    assert await chunks("chat_id", second) == 0
    assert await _count(database_url, "knowledge_documents WHERE chat_id IS NOT NULL") == 0
    assert await chunks("agent_id", kept["id"]) == 1
    # An agent deleted outright (not only retired) takes its chunks too.
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("DELETE FROM agents WHERE id = %s", (kept["id"],))
    assert await chunks("agent_id", kept["id"]) == 0


# Restarts.


@pytest.fixture
async def restart_database(embedded_pg: Any) -> str:
    """A database of its own: no other indexer (the session's app) can take its documents."""
    name = "switchboard_knowledge_restart"
    async with await psycopg.AsyncConnection.connect(embedded_pg.uri(), autocommit=True) as conn:
        await conn.execute(f"DROP DATABASE IF EXISTS {name}")
        await conn.execute(f"CREATE DATABASE {name}")
    url = embedded_pg.uri(name)
    await upgrade_database(url)
    return url


async def test_indexing_resumes_after_a_restart_and_after_a_crash(
    restart_database: str, embedders: dict[str, HashEmbedder]
) -> None:
    settings = make_settings(restart_database)
    first = create_app(settings)
    embedders[MODEL].gate.clear()
    async with running(first) as client:
        await ensure_admin(
            first.state.switchboard.pool, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, name="A"
        )
        login = (
            await client.post(
                "/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            )
        ).json()
        admin = User({"user": {"id": "", "email": ADMIN_EMAIL}, **login}, ADMIN_PASSWORD)
        agent = (await client.get("/agents/", headers=admin.headers)).json()["items"][0]
        doc = await _agent_doc(client, admin, agent["id"], "Paris", PARIS)
        for _ in range(400):  # the indexer is in the middle of the oldest one
            if embedders[MODEL].calls:
                break
            await asyncio.sleep(0.025)
        during = await _rows(
            restart_database,
            "SELECT title, status, worker_id IS NOT NULL AS claimed FROM knowledge_documents "
            "ORDER BY created_at",
        )
        assert during == [
            {"title": "Personal finance glossary", "status": "indexing", "claimed": True},
            {"title": "Paris", "status": "pending", "claimed": False},
        ]
    # Shut down in the middle: let go of, back in the queue.
    released = await _rows(
        restart_database,
        "SELECT status, worker_id, heartbeat_at FROM knowledge_documents ORDER BY created_at",
    )
    assert released == [{"status": "pending", "worker_id": None, "heartbeat_at": None}] * 2
    # And one "crashed": claimed by a process that died, its heartbeat long stale.
    async with await psycopg.AsyncConnection.connect(restart_database, autocommit=True) as conn:
        await conn.execute(
            "UPDATE knowledge_documents SET status = 'indexing', worker_id = 'gone:1', "
            "heartbeat_at = now() - interval '1 hour' WHERE id = %s",
            (doc["id"],),
        )
    embedders[MODEL].gate.set()
    second = create_app(settings)
    async with running(second):
        second.state.switchboard.indexer.wake()
        for _ in range(400):
            rows = await _rows(
                restart_database,
                "SELECT title, status, chunk_count FROM knowledge_documents ORDER BY title",
            )
            if all(row["status"] == "indexed" for row in rows):
                break
            await asyncio.sleep(0.025)
    assert rows == [
        {"title": "Paris", "status": "indexed", "chunk_count": 1},
        {
            "title": "Personal finance glossary",
            "status": "indexed",
            "chunk_count": len(split(FINANCE_GLOSSARY)),
        },
    ]
