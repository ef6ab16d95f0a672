"""Graph building: langgraph.json's module-level graphs, and the graph cache."""

from __future__ import annotations

import importlib
import json
import uuid
from pathlib import Path

from langchain_core.messages import HumanMessage
from langgraph.graph.state import CompiledStateGraph

from graphs.build import GraphCache
from graphs.catalog import SEED_AGENTS
from graphs.spec import AgentSpec

ROOT = Path(__file__).resolve().parent.parent


async def test_every_graph_in_langgraph_json_compiles_without_a_checkpointer() -> None:
    config = json.loads((ROOT / "langgraph.json").read_text())
    assert set(config) == {"dependencies", "graphs", "env"}
    assert set(config["graphs"]) == {agent["slug"] for agent in SEED_AGENTS}
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
