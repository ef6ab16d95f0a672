"""Exporting chats (one as JSON Lines or JSON, all of a user's as a stream) and importing them
back: into another account, into a fresh server, and refusals that store nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.services import exports as exports_service
from storage import chats as chats_store
from storage.db import EmbeddedPostgres, connection_kwargs
from tests.conftest import User, assert_error, make_settings, running
from tests.test_feedback import put
from tests.test_forks import echo_chat, send
from tests.test_history import TURNS, get, tool_chat
from tests.test_messages import MakeAgent, make_agent, open_chat

__all__ = ["make_agent"]

JSONL = {"Content-Type": "application/jsonl"}
AGENT_KEYS = ("id", "slug", "name", "version", "system_prompt", "model_name", "tools_enabled")


async def export(
    client: httpx.AsyncClient, user: User, chat_id: str, format_: str = "jsonl"
) -> httpx.Response:
    response = await client.get(
        f"/chats/{chat_id}/export", params={"format": format_}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    return response


def records(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.text.endswith("\n")
    return [json.loads(line) for line in response.text.splitlines()]


async def import_(
    client: httpx.AsyncClient,
    user: User,
    body: str | bytes,
    content_type: str = JSONL["Content-Type"],
) -> httpx.Response:
    return await client.post(
        "/chats/import", content=body, headers={**user.headers, "Content-Type": content_type}
    )


def jsonl(*lines: Any) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


def without_ids(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k not in ("id", "chat_id")} for m in messages]


async def stored(database_url: str) -> dict[str, int]:
    """Everything an import could have written: chats, votes, and checkpoints of any thread."""
    tables = ("chats", "message_feedback", "checkpoints", "checkpoint_blobs", "checkpoint_writes")
    async with await psycopg.AsyncConnection.connect(database_url, **connection_kwargs()) as conn:
        counts = {}
        for table in tables:
            cur = await conn.execute(f"SELECT count(*) AS n FROM {table}")  # noqa: S608
            row = await cur.fetchone()
            assert row is not None
            counts[table] = row["n"]
    return counts


async def voted_tool_chat(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> tuple[str, list[dict[str, Any]]]:
    """``tool_chat`` with votes on two agent messages: its id and its messages as read."""
    chat_id, _ = await tool_chat(client, user, make_agent)
    messages = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]
    response = await put(client, user, chat_id, messages[3]["id"], {"score": 1, "comment": "right"})
    assert response.status_code == 200, response.text
    response = await put(client, user, chat_id, messages[9]["id"], {"score": -1})
    assert response.status_code == 200, response.text
    return chat_id, (await get(client, user, f"/chats/{chat_id}/messages"))["items"]


async def test_a_chat_exports_as_jsonl_and_json_with_every_message_and_its_feedback(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id, messages = await voted_tool_chat(client, user, make_agent)
    # The chat as it is, without whose and whose to read (what GET /chats/{id} adds).
    chat = await get(client, user, f"/chats/{chat_id}")
    del chat["access"], chat["owner"]
    agent = await get(client, user, f"/agents/{chat['agent_id']}")

    response = await export(client, user, chat_id)
    assert response.headers["content-type"] == "application/jsonl"
    assert response.headers["content-disposition"] == f'attachment; filename="chat-{chat_id}.jsonl"'
    assert response.headers["cache-control"] == "no-store"
    header, *lines = records(response)
    exported_at = datetime.fromisoformat(header.pop("exported_at"))
    assert exported_at.tzinfo is not None
    assert header == {
        "type": "chat",
        "format_version": 1,
        "chat": chat,
        "agent": {key: agent[key] for key in AGENT_KEYS},
    }
    assert header["agent"]["model_name"] == "fake:tools"
    assert header["agent"]["tools_enabled"] == ["calculator"]
    assert header["agent"]["system_prompt"] == "You are a test agent."
    # Every message once, in order, exactly as the messages API shows it (metadata, feedback).
    assert lines == [{"type": "message", **m} for m in messages]
    assert len(lines) == chat["message_count"] == 12
    assert [(m["sender"], m["content"]) for m in lines[:4]] == [
        ("user", "2+2"), ("agent", ""), ("tool", "4"), ("agent", "4"),
    ]  # fmt: skip
    assert [m["content"] for m in lines if m["sender"] == "user"] == TURNS
    call = lines[1]["metadata"]
    assert call["tool_calls"] == [
        {"id": call["tool_calls"][0]["id"], "name": "calculator", "args": {"expression": "2+2"}}
    ]
    assert lines[2]["metadata"] == {
        "tool_call_id": call["tool_calls"][0]["id"], "name": "calculator", "is_error": False,
    }  # fmt: skip
    answer = lines[3]["metadata"]
    assert (answer["model"], answer["finish_reason"], answer["tool_calls"]) == (
        "fake:tools", "stop", [],
    )  # fmt: skip
    assert set(answer["usage"]) == {"input_tokens", "output_tokens", "total_tokens"}
    assert answer["latency_ms"] >= 0
    assert (answer["feedback"]["score"], answer["feedback"]["comment"]) == (1, "right")
    assert (
        lines[9]["metadata"]["feedback"]["score"],
        lines[9]["metadata"]["feedback"]["comment"],
    ) == (-1, None)
    assert [m["metadata"]["feedback"] for m in lines if m["sender"] == "agent"].count(None) == 4
    assert all(m["created_at"] is not None for m in lines)

    response = await export(client, user, chat_id, "json")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == f'attachment; filename="chat-{chat_id}.json"'
    document = response.json()
    assert datetime.fromisoformat(document.pop("exported_at")).tzinfo is not None
    assert document == {**header, "messages": lines}


async def test_export_and_import_round_trip_into_another_account_and_the_chat_goes_on(
    client: httpx.AsyncClient, user: User, other_user: User, admin: User, make_agent: MakeAgent
) -> None:
    chat_id, messages = await voted_tool_chat(client, user, make_agent)
    original = await get(client, user, f"/chats/{chat_id}")
    exported = (await export(client, user, chat_id)).text

    response = await import_(client, other_user, exported)
    assert response.status_code == 201, response.text
    (chat,) = response.json()["chats"]
    assert chat["id"] != chat_id
    assert {k: chat[k] for k in ("agent_id", "title", "status", "message_count")} == {
        k: original[k] for k in ("agent_id", "title", "status", "message_count")
    }
    assert chat["title"] == "2+2"
    assert chat["forked_from"] is None
    read = await get(client, other_user, f"/chats/{chat['id']}")
    owner = {"id": other_user.id, "name": "Bob"}
    assert read == {**chat, "access": "owner", "owner": owner}
    # The conversation's last message is when it was last active.
    assert datetime.fromisoformat(chat["last_message_at"]) == datetime.fromisoformat(
        messages[-1]["created_at"]
    )

    imported = (await get(client, other_user, f"/chats/{chat['id']}/messages"))["items"]
    # The same messages in the same order, metadata and votes included, under new ids.
    assert without_ids(imported) == without_ids(messages)
    assert {m["chat_id"] for m in imported} == {chat["id"]}
    assert len({m["id"] for m in imported}) == 12
    assert not {m["id"] for m in imported} & {m["id"] for m in messages}
    # Its export is the original's, but for the ids and the chat's own row.
    again = records(await export(client, other_user, chat["id"]))
    assert without_ids(again[1:]) == without_ids(records_of(exported)[1:])
    assert again[0]["agent"] == records_of(exported)[0]["agent"]
    # The votes are the importer's: they can change them; the exporter's stay as they were.
    response = await put(client, other_user, chat["id"], imported[3]["id"], {"score": 0})
    assert response.status_code == 200, response.text
    voted = (await get(client, other_user, f"/chats/{chat['id']}/messages"))["items"]
    assert voted[3]["metadata"]["feedback"]["score"] == 0
    assert (await get(client, user, f"/chats/{chat_id}/messages"))["items"] == messages
    assert (await get(client, user, "/chats/"))["total"] == 1
    # Imported votes count for the agent (at its version now), beside the exporter's.
    response = await client.get(
        f"/agents/{original['agent_id']}/feedback-summary", headers=admin.headers
    )
    assert response.json()["versions"] == [
        {"version": 1, "up": 1, "down": 2, "neutral": 1, "total": 4}
    ]

    # The imported chat goes on like any other.
    answer = await send(client, other_user, chat["id"], "5*5")
    assert answer["status"] == "success"
    assert [(m["sender"], m["content"]) for m in answer["messages"]] == [
        ("user", "5*5"), ("agent", ""), ("tool", "25"), ("agent", "25"),
    ]  # fmt: skip
    after = (await get(client, other_user, f"/chats/{chat['id']}/messages"))["items"]
    assert after[:12] == voted
    assert after[12:] == answer["messages"]
    assert (await get(client, other_user, f"/chats/{chat['id']}"))["message_count"] == 16


def records_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
async def fresh_database(embedded_pg: EmbeddedPostgres) -> AsyncIterator[str]:
    """An empty database of its own: another server's, with nothing of this one's."""
    name = f"switchboard_fresh_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(embedded_pg.uri(), autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {name}")
    try:
        yield embedded_pg.uri(name)
    finally:
        async with await psycopg.AsyncConnection.connect(
            embedded_pg.uri(), autocommit=True
        ) as conn:
            await conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


async def test_an_export_moves_to_a_fresh_server_where_the_agent_is_found_by_slug(
    client: httpx.AsyncClient,
    user: User,
    seeded_agents: dict[str, dict[str, Any]],
    fresh_database: str,
) -> None:
    here = seeded_agents["assistant"]
    chat_id = await open_chat(client, user, here["id"])
    for content in ("hello there", "and again"):
        await send(client, user, chat_id, content)
    messages = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]
    response = await put(client, user, chat_id, messages[1]["id"], {"score": 1, "comment": "ok"})
    messages[1]["metadata"]["feedback"] = {
        k: v for k, v in response.json().items() if k != "message_id"
    }
    exported = (await export(client, user, chat_id)).text

    other = create_app(make_settings(fresh_database))
    async with running(other) as there:
        account = {"name": "Carol", "email": "carol@example.org", "password": "long password 1"}
        registered = await there.post("/auth/register", json=account)
        assert registered.status_code == 201, registered.text
        carol = User(registered.json(), account["password"])
        agents = (await there.get("/agents/", params={"limit": 100}, headers=carol.headers)).json()
        their_assistant = next(a for a in agents["items"] if a["slug"] == "assistant")
        # Seeded on both servers: the same slug, another id.
        assert their_assistant["id"] != here["id"]

        response = await import_(there, carol, exported)
        assert response.status_code == 201, response.text
        (chat,) = response.json()["chats"]
        assert (chat["agent_id"], chat["message_count"], chat["title"]) == (
            their_assistant["id"], 4, "hello there",
        )  # fmt: skip
        imported = (await get(there, carol, f"/chats/{chat['id']}/messages"))["items"]
        assert without_ids(imported) == without_ids(messages)

        answer = await send(there, carol, chat["id"], "one more")
        assert [(m["sender"], m["content"]) for m in answer["messages"]] == [
            ("user", "one more"), ("agent", "You said: one more"),
        ]  # fmt: skip
        after = (await get(there, carol, f"/chats/{chat['id']}/messages"))["items"]
        assert [m["content"] for m in after] == [
            "hello there", "You said: hello there", "and again", "You said: and again",
            "one more", "You said: one more",
        ]  # fmt: skip


async def test_export_of_all_chats_streams_every_chat_of_the_caller_page_by_page(
    client: httpx.AsyncClient,
    user: User,
    other_user: User,
    make_agent: MakeAgent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tools_chat, _ = await voted_tool_chat(client, user, make_agent)
    echo = await echo_chat(client, user, make_agent, "first", "second")
    empty = await open_chat(client, user, (await make_agent("fake:echo"))["id"])
    archived = await echo_chat(client, user, make_agent, "old")
    response = await client.put(
        f"/chats/{archived}", json={"status": "archived"}, headers=user.headers
    )
    assert response.status_code == 200
    last = await echo_chat(client, user, make_agent, "last")
    mine = [tools_chat, echo, empty, archived, last]
    theirs = await echo_chat(client, other_user, make_agent, "private")

    pages: list[int] = []
    real_page = chats_store.export_page

    async def counted(*args: Any, **kwargs: Any) -> Any:
        page = await real_page(*args, **kwargs)
        pages.append(len(page))
        return page

    monkeypatch.setattr(exports_service, "EXPORT_PAGE_SIZE", 2)
    monkeypatch.setattr(chats_store, "export_page", counted)
    response = await client.get("/chats/export", headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/jsonl"
    assert response.headers["content-disposition"] == 'attachment; filename="chats.jsonl"'
    assert response.headers["cache-control"] == "no-store"
    # Pages of two, until one comes back short: never more than a page of chats at once.
    assert pages == [2, 2, 1]

    everything = records(response)
    headers = [r for r in everything if r["type"] == "chat"]
    assert [h["chat"]["id"] for h in headers] == mine  # oldest first; not the other user's
    assert theirs not in response.text
    # Each chat is its own export, one after the other.
    expected: list[dict[str, Any]] = []
    for chat_id in mine:
        alone = records(await export(client, user, chat_id))
        expected += alone
    exported_at = {r.pop("exported_at") for r in everything if r["type"] == "chat"}
    assert len(exported_at) == 1
    for record in expected:
        record.pop("exported_at", None)
    assert everything == expected
    assert [h["chat"]["status"] for h in headers] == [
        "active", "active", "active", "archived", "active",
    ]  # fmt: skip

    # The whole export goes back in, as as many chats, in the same order.
    response = await import_(client, other_user, response.text)
    assert response.status_code == 201, response.text
    chats = response.json()["chats"]
    assert [c["message_count"] for c in chats] == [12, 4, 0, 2, 2]
    assert [c["status"] for c in chats] == [h["chat"]["status"] for h in headers]
    for chat, original in zip(chats, mine, strict=True):
        theirs_now = (await get(client, other_user, f"/chats/{chat['id']}/messages"))["items"]
        before = (await get(client, user, f"/chats/{original}/messages"))["items"]
        assert without_ids(theirs_now) == without_ids(before)
    assert (await get(client, other_user, "/chats/"))["total"] == 6


async def test_the_export_of_all_chats_reads_a_chat_only_when_it_is_written(
    app: FastAPI,
    client: httpx.AsyncClient,
    user: User,
    make_agent: MakeAgent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = await make_agent("fake:echo")
    chats = [await echo_chat(client, user, make_agent, f"chat {i}") for i in range(3)]
    state = app.state.switchboard
    read: list[str] = []
    real_messages = state.runs.threads.messages

    async def messages(chat_id: Any) -> Any:
        read.append(str(chat_id))
        return await real_messages(chat_id)

    monkeypatch.setattr(exports_service, "EXPORT_PAGE_SIZE", 2)
    monkeypatch.setattr(state.runs.threads, "messages", messages)
    stream = exports_service.export_all(state, uuid.UUID(user.id))
    first = await anext(stream)
    # One chat written, one thread read: the rest waits for the reader.
    assert read == chats[:1]
    assert json.loads(first.splitlines()[0])["chat"]["id"] == chats[0]
    # A chat opened while the export is under way comes in its turn: pages are read as the
    # stream goes, from where the last one ended.
    late = await open_chat(client, user, agent["id"])
    rest = [item async for item in stream]
    assert read == [*chats, late]
    assert [json.loads(item.splitlines()[0])["chat"]["id"] for item in rest] == [*chats[1:], late]


def header(agent: dict[str, Any] | None, **chat: Any) -> dict[str, Any]:
    reference = {"id": agent["id"], "slug": agent["slug"]} if agent is not None else None
    return {"type": "chat", "chat": chat, "agent": reference}


def user_says(content: str, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "sender": "user", "content": content, **extra}


def calls(call_id: str, expression: str, **metadata: Any) -> dict[str, Any]:
    tool_calls = [{"id": call_id, "name": "calculator", "args": {"expression": expression}}]
    return {
        "type": "message", "sender": "agent", "content": "",
        "metadata": {"tool_calls": tool_calls, **metadata},
    }  # fmt: skip


def result(call_id: str, content: str) -> dict[str, Any]:
    return {
        "type": "message", "sender": "tool", "content": content,
        "metadata": {"tool_call_id": call_id, "name": "calculator"},
    }  # fmt: skip


def answers(content: str, **metadata: Any) -> dict[str, Any]:
    return {"type": "message", "sender": "agent", "content": content, "metadata": metadata}


async def test_a_hand_written_evaluation_set_imports_with_what_it_leaves_out_filled_in(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:tools", ["calculator"])
    vote = {"score": 1, "created_at": "2026-01-02T03:04:05+00:00"}
    body = jsonl(
        {"type": "chat", "agent": {"slug": agent["slug"]}},
        user_says("2+2", created_at="2026-01-02T03:00:00+01:00"),
        calls("c1", "2+2"),
        result("c1", "4"),
        answers("4", feedback=vote, model="openai:gpt-4o", latency_ms=12.5),
        {"type": "chat", "chat": {"title": "Second"}, "agent": {"id": agent["id"]}},
    )
    response = await import_(client, user, body, "application/x-ndjson")
    assert response.status_code == 201, response.text
    first, second = response.json()["chats"]
    assert (first["title"], first["message_count"], first["agent_id"]) == ("2+2", 4, agent["id"])
    assert (second["title"], second["message_count"], second["last_message_at"]) == (
        "Second", 0, None,
    )  # fmt: skip
    messages = (await get(client, user, f"/chats/{first['id']}/messages"))["items"]
    assert messages[0]["created_at"] == "2026-01-02T03:00:00+01:00"
    assert all(m["created_at"] is not None for m in messages)
    assert messages[1]["metadata"] == {
        "model": None, "usage": None, "latency_ms": None, "finish_reason": None,
        "tool_calls": [{"id": "c1", "name": "calculator", "args": {"expression": "2+2"}}],
        "feedback": None,
    }  # fmt: skip
    assert messages[2]["metadata"] == {
        "tool_call_id": "c1",
        "name": "calculator",
        "is_error": False,
    }
    answer = messages[3]["metadata"]
    assert (answer["model"], answer["latency_ms"]) == ("openai:gpt-4o", 12.5)
    assert answer["feedback"] == {
        "score": 1, "comment": None,
        "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-02T03:04:05Z",
    }  # fmt: skip
    assert datetime.fromisoformat(first["last_message_at"]) == datetime.fromisoformat(
        messages[3]["created_at"]
    )
    # The imported thread is a thread like any other: a state, a history, a next turn.
    state = await get(client, user, f"/chats/{first['id']}/state")
    assert (state["messages"], state["next"]) == (messages, [])
    history = (await get(client, user, f"/chats/{first['id']}/history"))["items"]
    assert [(h["message_count"], h["source"], h["run_id"]) for h in history] == [
        (4, "update", None)
    ]
    answer = await send(client, user, first["id"], "6*7")
    assert [m["content"] for m in answer["messages"]] == ["6*7", "", "42", "42"]


async def test_a_chat_left_with_an_unanswered_tool_call_is_answered_before_it_goes_on(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    """An export of a chat whose last run was stopped while a tool ran ends with an agent
    message whose tool call has no result: the next run adds one first, as it does here."""
    agent = await make_agent("fake:tools", ["calculator"])
    body = jsonl(header(agent), user_says("2+2"), calls("c1", "2+2"))
    response = await import_(client, user, body)
    assert response.status_code == 201, response.text
    (chat,) = response.json()["chats"]
    answer = await send(client, user, chat["id"], "3*3")
    tool_results = [m for m in answer["messages"] if m["sender"] == "tool"]
    assert tool_results[0]["metadata"] == {
        "tool_call_id": "c1",
        "name": "calculator",
        "is_error": True,
    }
    assert [m["content"] for m in answer["messages"]][1:] == ["3*3", "", "9", "9"]
    messages = (await get(client, user, f"/chats/{chat['id']}/messages"))["items"]
    assert [m["sender"] for m in messages] == [
        "user",
        "agent",
        "tool",
        "user",
        "agent",
        "tool",
        "agent",
    ]


async def test_a_thread_without_an_agent_exports_and_imports_as_one(
    client: httpx.AsyncClient, user: User, other_user: User
) -> None:
    response = await client.post("/threads", json={}, headers=user.headers)
    thread_id = response.json()["thread_id"]
    header_record, *rest = records(await export(client, user, thread_id))
    assert (header_record["agent"], header_record["chat"]["agent_id"], rest) == (None, None, [])
    response = await import_(client, other_user, jsonl(header_record))
    assert response.status_code == 201, response.text
    (chat,) = response.json()["chats"]
    assert (chat["agent_id"], chat["message_count"]) == (None, 0)


async def test_every_bad_import_is_refused_with_its_own_code_and_stores_nothing(
    client: httpx.AsyncClient,
    user: User,
    admin: User,
    make_agent: MakeAgent,
    database_url: str,
) -> None:
    agent = await make_agent("fake:tools", ["calculator"])
    retired = await make_agent("fake:echo", name="Retired")
    response = await client.delete(f"/agents/{retired['id']}", headers=admin.headers)
    assert response.status_code == 204
    await echo_chat(client, user, make_agent, "something already here")
    good = [header(agent), user_says("2+2"), calls("c1", "2+2"), result("c1", "4"), answers("4")]
    # Tool call arguments nested 7 deep, one more than an import takes.
    deep: Any = {}
    for _ in range(6):
        deep = {"a": deep}
    nan = '{"type": "message", "sender": "agent", "content": "", "metadata": {"latency_ms": NaN}}'
    surrogate = '{"type": "message", "sender": "user", "content": "\\ud800"}'
    too_deep = {"tool_calls": [{"id": "c1", "name": "calculator", "args": deep}]}
    unknown = {"id": str(uuid.uuid4()), "slug": "nobody"}
    # (body, status, code, what the detail says), all as application/jsonl.
    lines: list[tuple[bytes | str, int, str, str]] = [
        (jsonl(*good).encode() + b"\xff\xfe\n", 422, "invalid_text", "Line 6"),
        (jsonl(good[0]) + "{nope\n", 422, "invalid_json", "Line 2 is not JSON"),
        (jsonl(*good[:4]) + nan + "\n", 422, "invalid_json", "Line 5"),
        (jsonl(good[0]) + "[" * 100_000 + "]" * 100_000, 422, "invalid_json", "Line 2"),
        (jsonl(*good[:2]).encode() + b'{"type": "\x00"}\n', 422, "nul_character", "Line 3"),
        (jsonl(*good[:2], user_says("a\u0000b")), 422, "nul_character", "Line 3"),
        (jsonl(good[0], calls("c1", "1", **{"x\u0000": 1})), 422, "nul_character", "Line 2"),
        (jsonl(good[0]) + surrogate + "\n", 422, "invalid_text", "Line 2"),
        ("", 422, "empty_import", "no records"),
        ("\n  \n\r\n", 422, "empty_import", "no records"),
        (jsonl(*good[1:]), 422, "missing_header", "Line 1: a message before any `chat`"),
        (jsonl(good[0], ["message"]), 422, "invalid_record", "Line 2 is not a JSON object"),
        (jsonl(good[0], {"content": "x"}), 422, "unknown_record_type", "Line 2 has no `type`"),
        (jsonl(*good, {"type": "run"}), 422, "unknown_record_type", "Line 6 has an unknown"),
        (jsonl(good[0], {**good[1], "sender": "robot"}), 422, "invalid_record", "Line 2"),
        (jsonl(good[0], {"type": "message", "sender": "user"}), 422, "invalid_record",
         "Line 2: content: Field required"),
        (jsonl(good[0], user_says(["a"])), 422, "invalid_record", "Line 2: content"),
        (jsonl(good[0], user_says("x", mood="happy")), 422, "invalid_record", "Line 2: mood"),
        (jsonl(*good[:3], {**good[3], "metadata": {}}), 422, "invalid_record",
         "Line 4: metadata.tool_call_id"),
        (jsonl(good[0], user_says("x", metadata={"model": "m"})), 422, "invalid_record",
         "Line 2: metadata.model"),
        (jsonl(*good[:4], answers("4", feedback={"score": 2})), 422, "invalid_record",
         "Line 5: metadata.feedback.score"),
        (jsonl(*good[:4], answers("4", latency_ms=True)), 422, "invalid_record",
         "Line 5: metadata.latency_ms"),
        (jsonl(good[0], user_says("x", created_at="2026-01-01T00:00:00")), 422,
         "invalid_record", "Line 2: created_at"),
        (jsonl(good[0], {**calls("c1", "x"), "metadata": too_deep}), 422, "invalid_record",
         "Line 2: metadata.tool_calls.0.args"),
        (jsonl({**good[0], "format_version": 2}), 422, "invalid_record",
         "Line 1: format_version"),
        (jsonl({**good[0], "agent": {"name": "x"}}), 422, "invalid_record", "Line 1: agent"),
        (jsonl(header(agent, title="  ")), 422, "invalid_record", "Line 1: chat.title"),
        (jsonl(good[0], good[1], result("c9", "4")), 422, "orphan_tool_result", "Line 3"),
        (jsonl(good[0], good[1], good[3], good[2]), 422, "orphan_tool_result", "Line 3"),
        (jsonl(*good[:4], result("c1", "4")), 422, "orphan_tool_result", "Line 5"),
        (jsonl(*good[:3], header(agent), result("c1", "4")), 422, "orphan_tool_result",
         "Line 5"),
        (jsonl(*good, calls("c1", "1")), 422, "duplicate_tool_call", "Line 6"),
        (jsonl({**good[0], "agent": unknown}, *good[1:]), 404, "agent_not_found",
         f"Line 1: no agent here has the id {unknown['id']} or the slug 'nobody'"),
        (jsonl(header(retired), good[1]), 409, "agent_retired", "Line 1"),
        # A bad chat after good ones: the good ones are not created either.
        (jsonl(*good, *good, header(agent), result("c7", "1")), 422, "orphan_tool_result",
         "Line 12"),
        (jsonl(*good, {**good[0], "agent": {"slug": "nobody"}}), 404, "agent_not_found",
         "Line 6: no agent here has the slug 'nobody'"),
    ]  # fmt: skip
    # One chat as a JSON document.
    documents: list[tuple[bytes | str, int, str, str]] = [
        ("{", 422, "invalid_json", "The document is not JSON"),
        (json.dumps(good[1]), 422, "missing_header", "The document"),
        (json.dumps({**good[0], "messages": [good[1], good[0]]}), 422, "misplaced_header",
         "messages[1]"),
        (json.dumps({**good[0], "messages": [good[1], {**good[2], "sender": "x"}]}), 422,
         "invalid_record", "messages[1]"),
        (json.dumps({**good[0], "messages": {}}), 422, "invalid_record", "messages"),
        (json.dumps({**good[0], "messages": [good[1], good[3]]}), 422, "orphan_tool_result",
         "messages[1]"),
    ]  # fmt: skip
    cases = [(*case, "application/jsonl") for case in lines]
    cases += [(*case, "application/json") for case in documents]
    cases += [(jsonl(*good), 415, "unsupported_media_type", "application/jsonl", "text/plain")]
    cases += [(jsonl(*good), 415, "unsupported_media_type", "application/jsonl", "")]
    before = await stored(database_url)
    for body, status, code, fragment, content_type in cases:
        response = await import_(client, user, body, content_type)
        detail = assert_error(response, status, code)["detail"]
        assert fragment in detail, (code, detail)
        assert await stored(database_url) == before, (code, detail)
    # The good records themselves import, as a JSON document and as JSON Lines.
    document = json.dumps({**good[0], "messages": good[1:]})
    for body, content_type in (
        (document, "application/json"),
        (jsonl(*good), "application/jsonl; charset=utf-8"),
    ):
        response = await import_(client, user, body, content_type)
        assert response.status_code == 201, response.text
        assert response.json()["chats"][0]["message_count"] == 4


async def test_an_import_may_exceed_the_body_limit_of_other_routes_up_to_its_own(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent, database_url: str
) -> None:
    agent = await make_agent("fake:echo")
    # Over the general 1 MiB: the import takes it, any other route refuses it.
    long_text = "x" * (2 * 1_048_576)
    body = jsonl(header(agent), user_says(long_text), answers("You said: " + long_text))
    response = await import_(client, user, body)
    assert response.status_code == 201, response.text
    (chat,) = response.json()["chats"]
    messages = (await get(client, user, f"/chats/{chat['id']}/messages"))["items"]
    assert [len(m["content"]) for m in messages] == [len(long_text), len(long_text) + 10]
    response = await client.post(
        "/chats/", content=body, headers={**user.headers, "Content-Type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")

    small = create_app(make_settings(database_url, import_max_bytes=4096))
    before = await stored(database_url)
    async with running(small) as limited:
        fits = jsonl(header(agent), user_says("y" * 3900))
        assert len(fits.encode()) <= 4096
        over = jsonl(header(agent), user_says("y" * 4096))
        response = await import_(limited, user, over)
        body_ = assert_error(response, 413, "payload_too_large")
        assert body_["detail"] == "Request body too large: at most 4096 bytes"

        async def chunks() -> AsyncIterator[bytes]:
            # No Content-Length: counted as it arrives.
            for start in range(0, len(over), 1000):
                yield over[start : start + 1000].encode()

        response = await limited.post(
            "/chats/import", content=chunks(), headers={**user.headers, **JSONL}
        )
        assert_error(response, 413, "payload_too_large")
        assert await stored(database_url) == before
        response = await import_(limited, user, fits)
        assert response.status_code == 201, response.text


async def test_an_import_that_fails_while_it_writes_leaves_nothing_behind(
    app: FastAPI,
    client: httpx.AsyncClient,
    user: User,
    admin: User,
    make_agent: MakeAgent,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checked, then the agent is retired while the threads are written: the chats are not
    created, and the threads written are deleted."""
    agent = await make_agent("fake:echo")
    threads = app.state.switchboard.runs.threads
    real_write = threads.write
    written: list[str] = []

    async def write(chat_id: Any, messages: Any) -> None:
        await real_write(chat_id, messages)
        written.append(str(chat_id))
        if len(written) == 2:
            response = await client.delete(f"/agents/{agent['id']}", headers=admin.headers)
            assert response.status_code == 204

    monkeypatch.setattr(threads, "write", write)
    before = await stored(database_url)
    chat = [header(agent), user_says("hi"), answers("You said: hi", feedback={"score": 1})]
    response = await import_(client, user, jsonl(*chat, *chat))
    assert_error(response, 409, "agent_retired")
    assert len(written) == 2
    assert await stored(database_url) == before
    for chat_id in written:
        assert await threads.snapshot(chat_id) is None


async def test_export_routes_refuse_what_they_do_not_serve(
    client: httpx.AsyncClient, user: User
) -> None:
    chat_id = (await client.post("/threads", json={}, headers=user.headers)).json()["thread_id"]
    response = await client.get(
        f"/chats/{chat_id}/export", params={"format": "xml"}, headers=user.headers
    )
    assert_error(response, 422, "validation_error")
    response = await client.get("/chats/export", params={"format": "json"}, headers=user.headers)
    assert_error(response, 422, "validation_error")
    response = await client.get(f"/chats/{uuid.uuid4()}/export", headers=user.headers)
    assert_error(response, 404, "not_found")
    for method, path in (("DELETE", "/chats/export"), ("GET", "/chats/import")):
        response = await client.request(method, path, headers=user.headers)
        assert_error(response, 405, "method_not_allowed")
    response = await client.get("/chats/export", headers=user.headers)
    assert response.status_code == 200
    # An agent-less thread is a chat of the user's too.
    assert [json.loads(line)["chat"]["id"] for line in response.text.splitlines()] == [chat_id]
