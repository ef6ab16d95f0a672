"""Messages and runs: agents answering over JSON and SSE, tools, failures, persistence."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from langchain_core.messages import BaseMessage, SystemMessage
from langchain_core.tools import tool
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from api.app import create_app
from graphs.fake import FakeChatModel
from tests.conftest import User, assert_error, make_settings, running
from tests.sse import SSEEvent, parse
from tools import TOOLS

SSE = {"Accept": "text/event-stream"}
MakeAgent = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def make_agent(client: httpx.AsyncClient, admin: User) -> MakeAgent:
    async def _make(model_name: str = "fake:echo", tools: list[str] | None = None, **extra: Any):
        body = {
            "name": extra.pop("name", f"Agent {model_name}"),
            "system_prompt": extra.pop("system_prompt", "You are a test agent."),
            "model_name": model_name,
            "tools_enabled": tools or [],
            **extra,
        }
        response = await client.post("/agents/", json=body, headers=admin.headers)
        assert response.status_code == 201, response.text
        return response.json()

    return _make


async def open_chat(client: httpx.AsyncClient, user: User, agent_id: str) -> str:
    response = await client.post("/chats/", json={"agent_id": agent_id}, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def stream(
    client: httpx.AsyncClient, user: User, chat_id: str, content: str
) -> tuple[httpx.Response, list[SSEEvent], list[str]]:
    response = await client.post(
        f"/chats/{chat_id}/messages", json={"content": content}, headers={**user.headers, **SSE}
    )
    assert response.status_code == 200, response.text
    events, comments = parse(response.text)
    return response, events, comments


def names(events: list[SSEEvent]) -> list[str]:
    return [e.event for e in events]


async def test_json_answer_from_a_seeded_agent(
    client: httpx.AsyncClient, user: User, seeded_agents: dict[str, Any]
) -> None:
    chat_id = await open_chat(client, user, seeded_agents["assistant"]["id"])
    response = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "hello there"}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "success"
    assert body["error"] is None
    assert [(m["sender"], m["content"]) for m in body["messages"]] == [
        ("user", "hello there"),
        ("agent", "You said: hello there"),
    ]
    agent_message = body["messages"][1]
    assert agent_message["chat_id"] == chat_id
    assert agent_message["metadata"]["model"] == "fake:echo"
    assert agent_message["metadata"]["tool_calls"] == []
    assert agent_message["metadata"]["usage"]["output_tokens"] == 4
    assert agent_message["metadata"]["latency_ms"] is not None
    assert body["usage"] == agent_message["metadata"]["usage"]
    assert response.headers["location"] == f"/runs/{body['run_id']}/stream"
    assert response.headers["content-location"] == f"/runs/{body['run_id']}"

    history = (await client.get(f"/chats/{chat_id}/messages", headers=user.headers)).json()
    assert history == {"items": body["messages"], "has_more": False}

    chat = (await client.get(f"/chats/{chat_id}", headers=user.headers)).json()
    assert chat["message_count"] == 2
    assert chat["title"] == "hello there"
    assert chat["last_message_at"] is not None

    run = (await client.get(f"/runs/{body['run_id']}", headers=user.headers)).json()
    assert run["status"] == "success"
    assert run["chat_id"] == chat_id
    assert run["model_name"] == "fake:echo"
    assert run["usage"] == body["usage"]
    assert run["ended_at"] is not None
    runs = (await client.get(f"/chats/{chat_id}/runs", headers=user.headers)).json()
    assert [r["id"] for r in runs["items"]] == [body["run_id"]]


async def test_sse_stream_of_tokens(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:tokens-20")
    chat_id = await open_chat(client, user, agent["id"])
    response, events, comments = await stream(client, user, chat_id, "go")

    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["location"].startswith("/runs/")
    assert response.text.startswith(": ping")
    assert comments[0] == "ping"

    assert names(events) == ["run", "message"] + ["token"] * 20 + ["message", "end"]
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    run = events[0].data
    assert run["chat_id"] == chat_id
    assert run["agent_id"] == agent["id"]
    assert events[1].data["sender"] == "user"
    assert events[1].data["content"] == "go"
    final = events[-2].data
    tokens = [e.data for e in events if e.event == "token"]
    assert {t["message_id"] for t in tokens} == {final["id"]}
    assert "".join(t["delta"] for t in tokens) == final["content"]
    assert final["content"] == " ".join(f"tok{i}" for i in range(20))
    assert events[-1].data == {"status": "success", "usage": final["metadata"]["usage"]}
    assert events[-1].data["usage"]["output_tokens"] == 20


async def test_tool_round_over_sse(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:tools", ["calculator"])
    chat_id = await open_chat(client, user, agent["id"])
    _, events, _ = await stream(client, user, chat_id, json.dumps({"expression": "6*7"}))

    answer_tokens = ["token"] * len([e for e in events if e.event == "token"])
    assert names(events) == [
        "run",
        "message",
        "tool_call",
        "message",
        "tool_result",
        "message",
        *answer_tokens,
        "message",
        "end",
    ]
    assert answer_tokens == ["token"]  # the answer "42" is one word
    call = events[2].data
    assert call["name"] == "calculator"
    assert call["args"] == {"expression": "6*7"}
    asking = events[3].data
    assert asking["sender"] == "agent"
    assert asking["id"] == call["message_id"]
    assert asking["metadata"]["tool_calls"] == [
        {"id": call["tool_call_id"], "name": "calculator", "args": {"expression": "6*7"}}
    ]
    assert events[4].data == {
        "tool_call_id": call["tool_call_id"],
        "name": "calculator",
        "content": "42",
        "is_error": False,
    }
    tool_message = events[5].data
    assert tool_message["sender"] == "tool"
    assert tool_message["content"] == "42"
    assert tool_message["metadata"] == {
        "tool_call_id": call["tool_call_id"],
        "name": "calculator",
        "is_error": False,
    }
    final = events[-2].data
    assert final["sender"] == "agent"
    assert final["content"] == "42"
    assert events[-1].data["status"] == "success"

    history = (await client.get(f"/chats/{chat_id}/messages", headers=user.headers)).json()
    assert [m["sender"] for m in history["items"]] == ["user", "agent", "tool", "agent"]
    assert [m["id"] for m in history["items"]] == [events[i].data["id"] for i in (1, 3, 5, -2)]


async def test_tool_round_over_json(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:tools", ["calculator"])
    chat_id = await open_chat(client, user, agent["id"])
    response = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "2 ** 10"}, headers=user.headers
    )
    assert response.status_code == 201
    messages = response.json()["messages"]
    assert [(m["sender"], m["content"]) for m in messages] == [
        ("user", "2 ** 10"),
        ("agent", ""),
        ("tool", "1024"),
        ("agent", "1024"),
    ]
    # Plain text went to the tool's first argument.
    assert messages[1]["metadata"]["tool_calls"][0]["args"] == {"expression": "2 ** 10"}
    assert (await client.get(f"/chats/{chat_id}", headers=user.headers)).json()[
        "message_count"
    ] == 4


async def test_hostile_tool_input_becomes_an_error_the_model_sees(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:tools", ["calculator"])
    chat_id = await open_chat(client, user, agent["id"])
    _, events, _ = await stream(client, user, chat_id, "__import__('os').system('id')")
    result = next(e.data for e in events if e.event == "tool_result")
    assert result["is_error"] is True
    assert result["content"].startswith("Error: ")
    final = events[-2].data
    assert final["content"] == result["content"]  # fake:tools repeats what the tool said
    assert events[-1].data["status"] == "success"


async def test_model_failure_ends_with_a_safe_error_and_the_chat_stays_usable(
    client: httpx.AsyncClient,
    user: User,
    admin: User,
    make_agent: MakeAgent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nothing listens on port 9 of loopback: the provider call fails at once.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    agent = await make_agent("openai:gpt-4o-mini")
    chat_id = await open_chat(client, user, agent["id"])
    response, events, _ = await stream(client, user, chat_id, "hello")
    assert names(events) == ["run", "message", "error", "end"]
    assert events[2].data == {
        "code": "run_failed",
        "message": "The agent could not answer. Try again.",
    }
    assert events[3].data == {"status": "error", "usage": {}}
    for leak in ("Traceback", "Connect", "127.0.0.1:9", "sk-test"):
        assert leak not in response.text
    run = (await client.get(f"/runs/{events[0].data['run_id']}", headers=user.headers)).json()
    assert run["status"] == "error"
    assert run["error"] == "OpenAIConnectionError"

    fixed = await client.put(
        f"/agents/{agent['id']}", json={"model_name": "fake:echo"}, headers=admin.headers
    )
    assert fixed.status_code == 200
    again = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "again"}, headers=user.headers
    )
    assert again.json()["status"] == "success"
    assert again.json()["messages"][-1]["content"] == "You said: again"


async def test_agent_update_takes_effect_on_the_next_message(
    client: httpx.AsyncClient, user: User, admin: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:echo")
    chat_id = await open_chat(client, user, agent["id"])
    url = f"/chats/{chat_id}/messages"
    first = await client.post(url, json={"content": "one"}, headers=user.headers)
    assert first.json()["messages"][-1]["content"] == "You said: one"
    await client.put(
        f"/agents/{agent['id']}", json={"model_name": "fake:tokens-3"}, headers=admin.headers
    )
    second = await client.post(url, json={"content": "two"}, headers=user.headers)
    assert second.json()["messages"][-1]["content"] == "tok0 tok1 tok2"
    runs = (await client.get(f"/chats/{chat_id}/runs", headers=user.headers)).json()["items"]
    assert [(r["agent_version"], r["model_name"]) for r in runs] == [
        (2, "fake:tokens-3"),
        (1, "fake:echo"),
    ]


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[BaseMessage]]:
    """The messages each call of a fake model received, system prompt included."""
    calls: list[list[BaseMessage]] = []
    plan = FakeChatModel._plan

    def recording(self: FakeChatModel, messages: list[BaseMessage], tools: Any) -> Any:
        calls.append(list(messages))
        return plan(self, messages, tools)

    monkeypatch.setattr(FakeChatModel, "_plan", recording)
    return calls


async def test_personalization_reaches_the_model(
    client: httpx.AsyncClient,
    user: User,
    make_agent: MakeAgent,
    interest_areas: dict[str, str],
    model_calls: list[list[BaseMessage]],
) -> None:
    agent = await make_agent("fake:echo", system_prompt="You are a careful legal aide.")
    chat_id = await open_chat(client, user, agent["id"])

    await client.post(f"/chats/{chat_id}/messages", json={"content": "hi"}, headers=user.headers)
    plain = model_calls[-1]
    assert isinstance(plain[0], SystemMessage)
    assert plain[0].content == "You are a careful legal aide."

    onboarding = await client.post(
        "/users/me/onboarding",
        json={
            "professional_role": "lawyer",
            "experience_level": "expert",
            "interest_area_ids": [interest_areas["law"], interest_areas["finance"]],
            "preferred_interaction_style": "concise",
        },
        headers=user.headers,
    )
    assert onboarding.status_code == 200
    await client.post(f"/chats/{chat_id}/messages", json={"content": "hi"}, headers=user.headers)
    prompt = model_calls[-1][0]
    assert isinstance(prompt, SystemMessage)
    assert prompt.content.startswith("You are a careful legal aide.\n\nAbout the user")
    assert "- Profession: lawyer" in prompt.content
    assert "- Experience level: expert." in prompt.content
    assert "- Preferred interaction style: concise." in prompt.content
    assert "- Interests: Finance, Law" in prompt.content
    # The prompt is applied per call and never stored in the thread.
    history = (await client.get(f"/chats/{chat_id}/messages", headers=user.headers)).json()
    assert [m["sender"] for m in history["items"]] == ["user", "agent", "user", "agent"]


async def test_bad_messages_change_nothing(
    client: httpx.AsyncClient,
    user: User,
    other_user: User,
    admin: User,
    make_agent: MakeAgent,
) -> None:
    agent = await make_agent("fake:echo")
    chat_id = await open_chat(client, user, agent["id"])
    url = f"/chats/{chat_id}/messages"
    for content in ["", "   \n ", "x" * 32_001, "nul \x00 byte"]:
        assert_error(
            await client.post(url, json={"content": content}, headers=user.headers),
            422,
            "validation_error",
        )
    for body in [{}, {"content": 5}, {"content": "hi", "extra": 1}, {"text": "hi"}]:
        assert_error(await client.post(url, json=body, headers=user.headers), 422)
    assert_error(
        await client.post(url, content=b"not json", headers=user.headers), 422, "validation_error"
    )
    assert_error(
        await client.post(url, json={"content": "mine?"}, headers=other_user.headers),
        404,
        "not_found",
    )
    assert_error(await client.post(url, json={"content": "hi"}), 401)

    archived = await client.put(
        f"/chats/{chat_id}", json={"status": "archived"}, headers=user.headers
    )
    assert archived.status_code == 200
    assert_error(
        await client.post(url, json={"content": "hi"}, headers=user.headers), 409, "conflict"
    )
    await client.put(f"/chats/{chat_id}", json={"status": "active"}, headers=user.headers)
    assert (await client.delete(f"/agents/{agent['id']}", headers=admin.headers)).status_code == 204
    assert_error(
        await client.post(url, json={"content": "hi"}, headers=user.headers), 409, "conflict"
    )

    assert (await client.get(url, headers=user.headers)).json() == {"items": [], "has_more": False}
    runs = (await client.get(f"/chats/{chat_id}/runs", headers=user.headers)).json()
    assert runs["total"] == 0
    chat = (await client.get(f"/chats/{chat_id}", headers=user.headers)).json()
    assert (chat["message_count"], chat["last_message_at"], chat["title"]) == (0, None, None)


async def test_exactly_32000_characters_is_accepted(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:tokens-1")
    chat_id = await open_chat(client, user, agent["id"])
    response = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "y" * 32_000}, headers=user.headers
    )
    assert response.status_code == 201
    assert len(response.json()["messages"][0]["content"]) == 32_000
    chat = (await client.get(f"/chats/{chat_id}", headers=user.headers)).json()
    assert chat["title"] == "y" * 60 + "…"


async def test_message_paging(client: httpx.AsyncClient, user: User, make_agent: MakeAgent) -> None:
    agent = await make_agent("fake:echo")
    chat_id = await open_chat(client, user, agent["id"])
    url = f"/chats/{chat_id}/messages"
    for i in range(3):
        await client.post(url, json={"content": f"m{i}"}, headers=user.headers)
    everything = (await client.get(url, headers=user.headers)).json()["items"]
    assert [m["content"] for m in everything] == [
        "m0", "You said: m0", "m1", "You said: m1", "m2", "You said: m2",
    ]  # fmt: skip
    newest = (await client.get(url, params={"limit": 4}, headers=user.headers)).json()
    assert newest == {"items": everything[2:], "has_more": True}
    older = await client.get(
        url, params={"limit": 4, "before": newest["items"][0]["id"]}, headers=user.headers
    )
    assert older.json() == {"items": everything[:2], "has_more": False}
    assert_error(
        await client.get(url, params={"before": "nope"}, headers=user.headers),
        404,
        "message_not_found",
    )
    assert_error(await client.get(url, params={"limit": 0}, headers=user.headers), 422)


async def test_runs_of_another_user_are_not_found(
    client: httpx.AsyncClient, user: User, other_user: User, seeded_agents: dict[str, Any]
) -> None:
    chat_id = await open_chat(client, user, seeded_agents["assistant"]["id"])
    run_id = (
        await client.post(
            f"/chats/{chat_id}/messages", json={"content": "hi"}, headers=user.headers
        )
    ).json()["run_id"]
    for path in (f"/runs/{run_id}", f"/runs/{run_id}/stream", f"/chats/{chat_id}/runs"):
        assert_error(await client.get(path, headers=other_user.headers), 404, "not_found")
    assert_error(await client.get(f"/chats/{chat_id}/messages", headers=other_user.headers), 404)


async def test_replay_a_finished_run_and_resume_after_an_event(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:tokens-5")
    chat_id = await open_chat(client, user, agent["id"])
    _, live, _ = await stream(client, user, chat_id, "go")
    run_id = live[0].data["run_id"]
    replay = await client.get(f"/runs/{run_id}/stream", headers=user.headers)
    assert parse(replay.text)[0] == live
    tail = await client.get(
        f"/runs/{run_id}/stream", headers={**user.headers, "Last-Event-ID": "4"}
    )
    assert parse(tail.text)[0] == live[4:]
    by_query = await client.get(
        f"/runs/{run_id}/stream", params={"last_event_id": 6}, headers=user.headers
    )
    assert parse(by_query.text)[0] == live[6:]


async def test_history_survives_a_new_app_instance(
    app: FastAPI, client: httpx.AsyncClient, user: User, make_agent: MakeAgent, database_url: str
) -> None:
    agent = await make_agent("fake:tools", ["calculator"])
    chat_id = await open_chat(client, user, agent["id"])
    await client.post(f"/chats/{chat_id}/messages", json={"content": "1+1"}, headers=user.headers)
    before = (await client.get(f"/chats/{chat_id}/messages", headers=user.headers)).json()
    assert len(before["items"]) == 4

    async with running(create_app(make_settings(database_url))) as restarted:
        after = (await restarted.get(f"/chats/{chat_id}/messages", headers=user.headers)).json()
        assert after == before
        more = await restarted.post(
            f"/chats/{chat_id}/messages", json={"content": "2+2"}, headers=user.headers
        )
        assert more.json()["messages"][-1]["content"] == "4"
        assert (await restarted.get(f"/chats/{chat_id}", headers=user.headers)).json()[
            "message_count"
        ] == 8


async def test_deleting_a_chat_deletes_its_checkpoints(
    app: FastAPI, client: httpx.AsyncClient, user: User, seeded_agents: dict[str, Any]
) -> None:
    chat_id = await open_chat(client, user, seeded_agents["assistant"]["id"])
    await client.post(f"/chats/{chat_id}/messages", json={"content": "hi"}, headers=user.headers)
    saver = app.state.switchboard.runs.checkpointer
    config = {"configurable": {"thread_id": chat_id}}
    assert await saver.aget_tuple(config) is not None
    assert (await client.delete(f"/chats/{chat_id}", headers=user.headers)).status_code == 204
    assert await saver.aget_tuple(config) is None
    assert [c async for c in saver.alist(config)] == []


async def test_a_second_message_during_a_run_is_rejected_with_the_active_run(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:tokens-10@30")
    chat_id = await open_chat(client, user, agent["id"])
    url = f"/chats/{chat_id}/messages"
    first = asyncio.create_task(client.post(url, json={"content": "one"}, headers=user.headers))
    # Wait until the first run is recorded as running.
    for _ in range(200):
        runs = (await client.get(f"/chats/{chat_id}/runs", headers=user.headers)).json()
        if runs["items"]:
            break
        await asyncio.sleep(0.01)
    active = runs["items"][0]
    assert active["status"] == "running"
    busy = await client.post(url, json={"content": "two"}, headers=user.headers)
    body = assert_error(busy, 409, "conflict")
    assert active["id"] in body["detail"]

    assert (await first).json()["status"] == "success"
    history = (await client.get(url, headers=user.headers)).json()["items"]
    assert [m["content"] for m in history] == ["one", " ".join(f"tok{i}" for i in range(10))]
    after = await client.post(url, json={"content": "three"}, headers=user.headers)
    assert after.json()["status"] == "success"


async def test_a_tool_that_crashes_returns_a_safe_error_and_the_run_goes_on(
    client: httpx.AsyncClient,
    user: User,
    make_agent: MakeAgent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @tool("flaky")
    def flaky(query: str) -> str:
        """Always fails."""
        raise RuntimeError("secret internals at /srv/db password=hunter2")

    monkeypatch.setitem(TOOLS, "flaky", flaky)
    agent = await make_agent("fake:tools", ["flaky"])
    chat_id = await open_chat(client, user, agent["id"])
    response, events, _ = await stream(client, user, chat_id, "anything")
    result = next(e.data for e in events if e.event == "tool_result")
    assert result == {
        "tool_call_id": result["tool_call_id"],
        "name": "flaky",
        "content": "Error: the tool flaky failed (RuntimeError). Try other arguments.",
        "is_error": True,
    }
    assert "hunter2" not in response.text
    assert events[-1].data["status"] == "success"
    assert events[-2].data["content"] == result["content"]


async def test_message_ids_are_stable_across_reads(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent, database_url: str
) -> None:
    """Ids are what `before=` pages by and what clients key on: every read gives the same ones,
    for every kind of message, whether the thread is read warm (the values its last run left)
    or rebuilt from stored writes (a new process), and they match the ids the answers had."""
    agent = await make_agent("fake:tools", ["calculator"])
    chat_id = await open_chat(client, user, agent["id"])
    answers = []
    for text in ("2 ** 10", "3 * 3", '{"expression": "1/0"}'):
        response = await client.post(
            f"/chats/{chat_id}/messages", json={"content": text}, headers=user.headers
        )
        answers += response.json()["messages"]
    url = f"/chats/{chat_id}/messages"
    first = (await client.get(url, headers=user.headers)).json()["items"]
    second = (await client.get(url, headers=user.headers)).json()["items"]
    assert [m["id"] for m in first] == [m["id"] for m in second]
    assert [m["id"] for m in first] == [m["id"] for m in answers]
    assert len({m["id"] for m in first}) == len(first) == 12
    older = await client.get(url, params={"before": first[6]["id"]}, headers=user.headers)
    assert [m["id"] for m in older.json()["items"]] == [m["id"] for m in first[:6]]
    async with running(create_app(make_settings(database_url))) as cold:
        rebuilt = (await cold.get(url, headers=user.headers)).json()["items"]
    assert rebuilt == first


@pytest.mark.parametrize("api", ["native", "protocol"])
async def test_a_run_starts_from_what_the_last_run_left_without_rebuilding_the_thread(
    client: httpx.AsyncClient,
    user: User,
    make_agent: MakeAgent,
    monkeypatch: pytest.MonkeyPatch,
    api: str,
) -> None:
    agent = await make_agent("fake:echo")
    chat_id = await open_chat(client, user, agent["id"])
    rebuilt: list[str] = []
    original = AsyncPostgresSaver.aget_delta_channel_history

    async def counting(self: Any, *, config: Any, channels: Any) -> Any:
        rebuilt.append(config["configurable"]["thread_id"])
        return await original(self, config=config, channels=channels)

    monkeypatch.setattr(AsyncPostgresSaver, "aget_delta_channel_history", counting)
    for text in ("one", "two", "three"):
        if api == "native":
            url, body = f"/chats/{chat_id}/messages", {"content": text}
        else:
            url = f"/threads/{chat_id}/runs/wait"
            body = {"assistant_id": agent["id"],
                    "input": {"messages": [{"role": "user", "content": text}]}}  # fmt: skip
        response = await client.post(url, json=body, headers=user.headers)
        assert response.status_code in (200, 201), response.text
    history = (await client.get(f"/chats/{chat_id}/messages", headers=user.headers)).json()
    assert [m["content"] for m in history["items"]] == [
        "one", "You said: one", "two", "You said: two", "three", "You said: three",
    ]  # fmt: skip
    assert rebuilt == []
