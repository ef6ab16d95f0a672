"""Bring your own graph: the graphs of a langgraph.json served as agents, through both APIs and
the official SDK, with the server's checkpointer."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client

from api.app import create_app
from tests.conftest import PASSWORD, assert_error, make_settings, running
from tests.servers import ADMIN, Server, admin_env
from tests.sse import parse

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY_CONFIG = ROOT / "langgraph.json"
SSE = {"Accept": "text/event-stream"}


async def _user(client: httpx.AsyncClient) -> dict[str, str]:
    account = {"name": "Grace", "email": "grace@example.org", "password": PASSWORD}
    registered = await client.post("/auth/register", json=account)
    assert registered.status_code == 201, registered.text
    return {"Authorization": f"Bearer {registered.json()['access_token']}"}


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An app serving the repository's langgraph.json (its example graph, `research`)."""
    settings = make_settings(database_url, graphs_config=REPOSITORY_CONFIG)
    async with running(create_app(settings)) as client:
        yield client


async def _agents(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    listed = await client.get("/agents/", params={"limit": 100}, headers=headers)
    return {agent["slug"]: agent for agent in listed.json()["items"]}


async def test_the_example_graph_is_an_agent_of_kind_graph(
    served: httpx.AsyncClient,
) -> None:
    headers = await _user(served)
    agents = await _agents(served, headers)
    research = agents["research"]
    assert research["kind"] == "graph"
    assert research["name"] == "Research"
    assert research["description"] == (
        "Researches a question, then answers it from its notes: an example of a graph of your own."
    )
    assert (research["model_name"], research["tools_enabled"]) == (None, [])
    # The seeded agents come from graphs/agents.py, which is not served as graphs.
    assert {slug: a["kind"] for slug, a in agents.items() if slug != "research"} == {
        "assistant": "agent", "personal-finance": "agent", "marketing": "agent",
        "software-engineer": "agent", "legal-research": "agent",
    }  # fmt: skip


async def test_the_native_api_streams_the_graphs_answer_and_keeps_its_thread(
    served: httpx.AsyncClient,
) -> None:
    headers = await _user(served)
    research = (await _agents(served, headers))["research"]
    chat = await served.post("/chats/", json={"agent_id": research["id"]}, headers=headers)
    chat_id = chat.json()["id"]
    question = "what about solar panels"
    answered = await served.post(
        f"/chats/{chat_id}/messages", json={"content": question}, headers={**headers, **SSE}
    )
    assert answered.status_code == 200, answered.text
    events, _ = parse(answered.text)
    names = [e.event for e in events]
    tokens = [e.data["delta"] for e in events if e.event == "token"]
    assert names == ["run", "message", *["token"] * len(tokens), "message", "end"]
    assert "".join(tokens) == f"You said: {question}"
    assert events[-2].data["content"] == f"You said: {question}"
    assert events[-1].data["status"] == "success"
    # The thread is in Postgres: the messages read back, and the graph's own channel too.
    page = (await served.get(f"/chats/{chat_id}/messages", headers=headers)).json()
    assert [(m["sender"], m["content"]) for m in page["items"]] == [
        ("user", question),
        ("agent", f"You said: {question}"),
    ]
    state = (await served.get(f"/threads/{chat_id}/state", headers=headers)).json()
    assert state["values"]["notes"] == ["source 1: about what", "source 2: about about",
                                        "source 3: about solar"]  # fmt: skip
    # A second turn sees the first: the checkpointer was injected.
    again = await served.post(
        f"/chats/{chat_id}/messages", json={"content": "and wind"}, headers=headers
    )
    assert [m["content"] for m in again.json()["messages"]] == ["and wind", "You said: and wind"]
    history = (await served.get(f"/chats/{chat_id}/messages", headers=headers)).json()
    assert len(history["items"]) == 4


async def test_the_agent_protocol_runs_the_graph_with_its_state(
    served: httpx.AsyncClient,
) -> None:
    headers = await _user(served)
    thread = (await served.post("/threads", json={}, headers=headers)).json()["thread_id"]
    done = await served.post(
        f"/threads/{thread}/runs/wait",
        json={
            "assistant_id": "research",
            "input": {"messages": [{"role": "user", "content": "tides and moons"}]},
        },
        headers=headers,
    )
    assert done.status_code == 200, done.text
    values = done.json()
    assert values["notes"] == ["source 1: about tides", "source 2: about moons"]
    assert [m["type"] for m in values["messages"]] == ["human", "ai"]
    assert values["messages"][1]["content"] == "You said: tides and moons"
    graph = await served.get("/assistants/research/graph", headers=headers)
    assert {node["id"] for node in graph.json()["nodes"]} == {
        "__start__", "research", "answer", "__end__",
    }  # fmt: skip


def test_the_official_sdk_runs_the_example_graph(data_dir: Path) -> None:
    env = admin_env(data_dir, SWITCHBOARD_GRAPHS_CONFIG=str(REPOSITORY_CONFIG))
    server = Server(data_dir, env)
    try:
        http = httpx.Client(base_url=server.url, timeout=30)
        http.post("/auth/login", json=ADMIN).raise_for_status()
        account = {"name": "Sdk", "email": "sdk@example.org", "password": PASSWORD}
        token = http.post("/auth/register", json=account).json()["access_token"]
        sdk = get_sync_client(url=server.url, headers={"Authorization": f"Bearer {token}"})
        [assistant] = sdk.assistants.search(graph_id="research")
        assert assistant["name"] == "Research"
        thread = sdk.threads.create()
        values = sdk.runs.wait(
            thread["thread_id"],
            "research",
            input={"messages": [{"role": "user", "content": "volcanoes erupt"}]},
        )
        assert isinstance(values, dict)
        assert values["notes"] == ["source 1: about volcanoes", "source 2: about erupt"]
        chunks = list(
            sdk.runs.stream(
                thread["thread_id"],
                "research",
                input={"messages": [{"role": "user", "content": "why"}]},
                stream_mode="updates",
            )
        )
        updates = [c.data for c in chunks if c.event == "updates"]
        assert [list(update) for update in updates] == [["research"], ["answer"]]
        state = sdk.threads.get_state(thread["thread_id"])
        assert [m["content"] for m in state["values"]["messages"]] == [
            "volcanoes erupt", "You said: volcanoes erupt", "why", "You said: why",
        ]  # fmt: skip
    finally:
        server.signal(15)


async def test_any_graph_a_config_names_is_served_and_broken_ones_are_skipped(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "counter.py").write_text(
        textwrap.dedent(
            '''
            """Counts its runs."""
            from typing import TypedDict
            from langgraph.graph import StateGraph, START, END

            class State(TypedDict):
                count: int

            def tick(state: State) -> State:
                return {"count": state.get("count", 0) + 1}

            builder = StateGraph(State)
            builder.add_node("tick", tick)
            builder.add_edge(START, "tick")
            builder.add_edge("tick", END)
            uncompiled = builder
            '''
        )
    )
    (tmp_path / "broken.py").write_text("raise RuntimeError('no such luck')\n")
    (tmp_path / "langgraph.json").write_text(
        """{"graphs": {"counter": "./counter.py:uncompiled", "broken": "./broken.py:graph",
        "Bad Id": "./counter.py:uncompiled", "assistant": "./counter.py:uncompiled",
        "missing": "./counter.py:nothing"}}"""
    )
    settings = make_settings(database_url, graphs_config=tmp_path / "langgraph.json")
    with caplog.at_level(logging.INFO, logger="graphs.custom"):
        async with running(create_app(settings)) as client:
            headers = await _user(client)
            agents = await _agents(client, headers)
            # A StateGraph is compiled; a broken module, a missing attribute and a bad id are
            # skipped; a seeded agent's slug stays that agent.
            assert {s: a["kind"] for s, a in agents.items() if a["kind"] == "graph"} == {
                "counter": "graph"
            }
            assert agents["counter"]["description"] == "Counts its runs."
            assert agents["assistant"]["kind"] == "agent"
            thread = (await client.post("/threads", json={}, headers=headers)).json()
            for expected in (1, 2):
                done = await client.post(
                    f"/threads/{thread['thread_id']}/runs/wait",
                    json={"assistant_id": "counter", "input": {}},
                    headers=headers,
                )
                assert done.json() == {"count": expected}
            # No messages channel: the native API says to use the Agent Protocol.
            chat = await client.post(
                "/chats/", json={"agent_id": agents["counter"]["id"]}, headers=headers
            )
            sent = await client.post(
                f"/chats/{chat.json()['id']}/messages", json={"content": "hi"}, headers=headers
            )
            assert_error(sent, 409, "not_a_chat_graph")
    logged = [r.getMessage() for r in caplog.records if r.name == "graphs.custom"]
    assert "graph 'broken' (./broken.py:graph) failed to load and is skipped" in logged
    assert "graph 'missing' (./counter.py:nothing) failed to load and is skipped" in logged
    assert "graph 'Bad Id': ids are lowercase letters, digits and '-'; skipped" in logged
    errors = [r.getMessage() for r in caplog.records if r.name == "api.bootstrap"]
    assert errors == ["graph 'assistant' is not served: an agent already has that slug"]
