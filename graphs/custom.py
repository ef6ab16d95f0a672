"""Graphs of ``langgraph.json`` served as agents: bring your own graph.

Any graph named in the file's ``graphs`` (``"./path/file.py:attr"`` or ``"package.module:attr"``,
as ``langgraph dev`` reads it) that is a compiled LangGraph graph (or a ``StateGraph``, compiled
here) becomes an agent of kind ``graph`` whose slug is its graph id. The server serves a copy
with its own Postgres checkpointer and store injected, so its threads persist like any agent's.
The seeded agents' module (``graphs/agents.py``) is skipped: those agents are built from the
``agents`` table instead. A graph that fails to load is logged with its id and skipped.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

log = logging.getLogger(__name__)

# Loaded graphs by graph id (= the agent's slug), without a checkpointer; and the first
# paragraph of each one's module docstring, its agent's description.
GRAPHS: dict[str, Pregel] = {}
DESCRIPTIONS: dict[str, str] = {}
BUILT_IN = Path(__file__).with_name("agents.py").resolve()
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}$")


class GraphUnavailable(LookupError):
    """A graph agent whose graph this server did not load (``langgraph.json`` changed)."""


def _describe(module: Any) -> str:
    text = (getattr(module, "__doc__", None) or "").strip().split("\n\n")[0]
    return " ".join(text.split())[:1000]


def _import(base: Path, graph_id: str, reference: str) -> Any:
    location, _, attribute = reference.rpartition(":")
    if not location or not attribute:
        raise ValueError("not <path or module>:<attribute>")
    if location.endswith(".py") or "/" in location:
        path = (base / location).resolve()
        if path == BUILT_IN:
            return None
        name = f"switchboard_graph_{re.sub(r'[^0-9a-zA-Z_]', '_', graph_id)}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(location)
        if Path(getattr(module, "__file__", "") or "").resolve() == BUILT_IN:
            return None
    DESCRIPTIONS[graph_id] = _describe(module)
    return getattr(module, attribute)


def load(config: Path | None) -> dict[str, Pregel]:
    """Load the graphs ``config`` (a ``langgraph.json``) names into ``GRAPHS`` (replacing what
    an earlier call loaded); none when it is ``None`` or missing."""
    GRAPHS.clear()
    DESCRIPTIONS.clear()
    if config is None or not config.is_file():
        return GRAPHS
    try:
        named = json.loads(config.read_text()).get("graphs") or {}
    except (OSError, ValueError, AttributeError):
        log.exception("%s is not a readable langgraph.json: no graph of it is served", config)
        return GRAPHS
    for graph_id, reference in named.items():
        if not isinstance(reference, str) or not SLUG.match(graph_id):
            log.error("graph %r: ids are lowercase letters, digits and '-'; skipped", graph_id)
            continue
        try:
            graph = _import(config.parent, graph_id, reference)
            if graph is None:
                continue
            if isinstance(graph, StateGraph):
                graph = graph.compile()
            if not isinstance(graph, Pregel):
                raise TypeError(f"{type(graph).__name__} is no compiled graph")
        except Exception:
            log.exception("graph %r (%s) failed to load and is skipped", graph_id, reference)
            continue
        GRAPHS[graph_id] = graph
    if GRAPHS:
        log.info("graphs of %s served as agents: %s", config, ", ".join(sorted(GRAPHS)))
    return GRAPHS


def served(graph_id: str, checkpointer: Any, store: Any) -> Pregel:
    """Graph ``graph_id`` with the server's checkpointer and store; ``GraphUnavailable`` when no
    graph of that id is loaded (the file changed since its agent was added)."""
    graph = GRAPHS.get(graph_id)
    if graph is None:
        raise GraphUnavailable(graph_id)
    return graph.copy(update={"checkpointer": checkpointer, "store": store})


def has_messages(graph_id: str) -> bool:
    """Whether graph ``graph_id`` keeps a ``messages`` channel the native API can talk to."""
    graph = GRAPHS.get(graph_id)
    return graph is not None and "messages" in graph.channels
