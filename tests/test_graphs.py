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
