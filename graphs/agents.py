"""Module-level graphs of the seeded agents, for ``langgraph.json`` (and so ``langgraph dev``).

Built without a checkpointer: the LangGraph server that loads them brings its own. The server
itself builds its graphs from the ``agents`` table instead (``graphs.build.GraphCache``).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from graphs.build import build_graph
from graphs.catalog import SEED_AGENTS
from graphs.spec import AgentSpec

# Stable ids, so a graph keeps its identity across processes.
_NAMESPACE = uuid.UUID("2f1b7c1e-5d0a-4c55-9a51-7b0f3c2d9e10")


def _spec(seed: dict[str, Any]) -> AgentSpec:
    return AgentSpec(
        id=uuid.uuid5(_NAMESPACE, seed["slug"]),
        version=1,
        slug=seed["slug"],
        name=seed["name"],
        system_prompt=seed["system_prompt"],
        model_name=os.environ.get("SWITCHBOARD_DEFAULT_MODEL") or "fake:echo",
        tools=tuple(seed["tools"]),
    )


_SEEDS = {seed["slug"]: seed for seed in SEED_AGENTS}

assistant = build_graph(_spec(_SEEDS["assistant"]))
personal_finance = build_graph(_spec(_SEEDS["personal-finance"]))
marketing = build_graph(_spec(_SEEDS["marketing"]))
software_engineer = build_graph(_spec(_SEEDS["software-engineer"]))
legal_research = build_graph(_spec(_SEEDS["legal-research"]))
