"""Researches a question, then answers it from its notes: an example of a graph of your own.

Not built by ``create_agent``: two nodes over a state of its own (the conversation's
``messages`` and the ``notes`` the research step writes), named in ``langgraph.json`` like any
graph ``langgraph dev`` serves. Switchboard serves it as an agent of kind ``graph`` with its
Postgres checkpointer injected (``graphs/custom.py``). The answer comes from the server's
default model (``SWITCHBOARD_DEFAULT_MODEL``), streamed token by token.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from graphs.models import make_model


class ResearchState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    # What the research step found for the latest question, one line per source.
    notes: list[str]


def research(state: ResearchState) -> dict[str, Any]:
    question = next(
        (m.text for m in reversed(state["messages"]) if isinstance(m, HumanMessage)), ""
    )
    # A stand-in for real sources (a search, a knowledge base): deterministic, offline.
    words = [w.strip("?.,!").lower() for w in question.split() if len(w.strip("?.,!")) > 3]
    return {"notes": [f"source {i + 1}: about {word}" for i, word in enumerate(words[:3])]}


async def answer(state: ResearchState) -> dict[str, Any]:
    model = make_model(os.environ.get("SWITCHBOARD_DEFAULT_MODEL") or "fake:echo")
    notes = "\n".join(state.get("notes") or []) or "(nothing found)"
    prompt = SystemMessage(f"Answer from these notes only.\n{notes}")
    return {"messages": [await model.ainvoke([prompt, *state["messages"]])]}


builder = StateGraph(ResearchState)
builder.add_node("research", research)
builder.add_node("answer", answer)
builder.add_edge(START, "research")
builder.add_edge("research", "answer")
builder.add_edge("answer", END)
graph = builder.compile(name="research")
