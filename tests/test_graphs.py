"""Graph building: langgraph.json's module-level graphs, and the graph cache."""

from __future__ import annotations

import importlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    RemoveMessage,
    ToolMessage,
)
from langgraph.graph.message import REMOVE_ALL_MESSAGES, add_messages
from langgraph.graph.state import CompiledStateGraph

from graphs import build
from graphs.build import GraphCache, _add_message_batches
from graphs.catalog import SEED_AGENTS
from graphs.spec import AgentSpec

ROOT = Path(__file__).resolve().parent.parent


async def test_every_graph_in_langgraph_json_compiles_without_a_checkpointer() -> None:
    config = json.loads((ROOT / "langgraph.json").read_text())
    assert set(config) == {"dependencies", "graphs", "env"}
    # The seeded agents, and the example of a graph of one's own (tests/test_custom_graphs.py).
    assert set(config["graphs"]) == {agent["slug"] for agent in SEED_AGENTS} | {"research"}
    for name, target in config["graphs"].items():
        path, _, attribute = target.partition(":")
        module_name = Path(path).with_suffix("").as_posix().removeprefix("./").replace("/", ".")
        graph = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(graph, CompiledStateGraph), name
        assert graph.checkpointer is None, name
        assert graph.name == name
        result = await graph.ainvoke({"messages": [HumanMessage("ping")]})
        assert result["messages"][-1].content == "You said: ping"


def test_graph_cache_is_per_agent_version() -> None:
    cache = GraphCache(checkpointer=None)
    spec = AgentSpec(
        id=uuid.uuid4(),
        version=1,
        slug="s",
        name="S",
        system_prompt="",
        model_name="fake:echo",
        tools=(),
    )
    first = cache.get(spec)
    assert cache.get(spec) is first
    newer = AgentSpec(**{**spec.__dict__, "version": 2})
    assert cache.get(newer) is not first


async def test_a_thread_written_before_the_delta_channel_reads_and_goes_on(
    database_url: str,
) -> None:
    """Threads checkpointed with whole message lists (before ``messages`` became a delta
    channel) are read as the base to replay from, and keep growing."""
    from langchain.agents import create_agent

    from graphs.build import SwitchboardMiddleware, build_graph
    from graphs.models import make_model
    from graphs.spec import AgentContext
    from storage.checkpoints import Checkpointer
    from storage.db import open_pool

    spec = AgentSpec(
        id=uuid.uuid4(), version=1, slug="old", name="old", system_prompt="",
        model_name="fake:echo", tools=(),
    )  # fmt: skip
    pool = await open_pool(database_url, min_size=1, max_size=2)
    try:
        saver = Checkpointer(pool)
        before = create_agent(
            make_model("fake:echo"), middleware=[SwitchboardMiddleware(spec)],
            context_schema=AgentContext, checkpointer=saver,
        )  # fmt: skip
        config = {"configurable": {"thread_id": str(uuid.uuid4())}}
        context = AgentContext(user_id="u", chat_id="c", profile=None)
        for text in ("one", "two"):
            await before.ainvoke({"messages": [HumanMessage(text)]}, config, context=context)
        now = build_graph(spec, saver)
        values = (await now.aget_state(config)).values
        assert [m.text for m in values["messages"]] == [
            "one", "You said: one", "two", "You said: two"
        ]  # fmt: skip
        await now.ainvoke({"messages": [HumanMessage("three")]}, config, context=context)
        values = (await now.aget_state(config)).values
        assert [m.text for m in values["messages"]][-3:] == [
            "You said: two", "three", "You said: three"
        ]  # fmt: skip
        assert len(values["messages"]) == 6
    finally:
        await pool.close()


def _history() -> list[Any]:
    return [
        HumanMessage("q1", id="h1"),
        AIMessage("a1", id="a1"),
        HumanMessage("q2", id="h2"),
        AIMessage("a2", id="a2"),
    ]


@pytest.mark.parametrize(
    "batches",
    [
        [[HumanMessage("q3", id="h3")]],  # appends: the fast path
        [
            [HumanMessage("q3", id="h3")],
            [AIMessage("a3", id="a3"), ToolMessage("t", tool_call_id="c", id="t3")],
        ],
        [HumanMessage("q3", id="h3")],  # a bare message, not a list
        [[AIMessage("a2, edited", id="a2")]],  # replaces by id
        [[RemoveMessage(id="h1")]],  # removes
        [[RemoveMessage(id=REMOVE_ALL_MESSAGES), HumanMessage("fresh", id="f")]],
        [[{"role": "user", "content": "a dict", "id": "d1"}]],  # coerced
        [[AIMessageChunk("a chunk", id="c1")]],  # becomes a message
        [[HumanMessage("twice", id="x"), HumanMessage("again", id="x")]],  # last one wins
        [],
    ],
)
def test_merging_message_batches_is_add_messages(batches: list[Any]) -> None:
    """Whichever path a merge takes, it gives what LangGraph's own reducer gives."""
    flat = [m for batch in batches for m in (batch if isinstance(batch, list) else [batch])]
    merged = _add_message_batches(_history(), batches)
    expected = add_messages(_history(), flat)
    assert [(type(m), m.id, m.content) for m in merged] == [
        (type(m), m.id, m.content) for m in expected
    ]


def test_a_merged_message_without_an_id_gets_one() -> None:
    merged = _add_message_batches(_history(), [[HumanMessage("no id")]])
    assert [m.content for m in merged] == ["q1", "a1", "q2", "a2", "no id"]
    assert merged[-1].id is not None


def test_appending_new_messages_skips_the_general_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    def general(*args: Any) -> Any:
        raise AssertionError("took the general path")

    monkeypatch.setattr(build, "add_messages", general)
    history = _history()
    merged = _add_message_batches(
        history, [[HumanMessage("q3", id="h3")], AIMessage("a3", id="a3")]
    )
    assert [m.id for m in merged] == ["h1", "a1", "h2", "a2", "h3", "a3"]
    assert [m.id for m in history] == ["h1", "a1", "h2", "a2"]  # a new list, never in place
