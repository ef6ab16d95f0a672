"""``recall``: find what was remembered about the user (long-term memory)."""

from __future__ import annotations

from typing import Annotated, Any

from langchain.tools import ToolRuntime
from langchain_core.tools import tool
from pydantic import Field

from storage.store import Store
from tools.memory import memory_namespace

REINDEXING_NOTE = (
    "Note: memories are being re-indexed for a new embedding model; some are missing from "
    "these results until it is done."
)


@tool("recall")
async def recall(
    query: Annotated[
        str, Field(description="What to look for, in plain words.", min_length=1, max_length=2000)
    ],
    runtime: ToolRuntime[Any, Any],
    k: Annotated[int, Field(description="How many memories at most.", ge=1, le=20)] = 5,
) -> str:
    """Search what you remembered about the user in earlier chats, closest in meaning first.
    Returns one memory per line, or says that nothing is remembered; a first line notes when
    some memories cannot be found yet (being re-indexed)."""
    store, namespace = memory_namespace(runtime)
    found = await store.asearch(namespace, query=query, limit=k)
    lines = []
    if isinstance(store, Store) and await store.areindexing(namespace):
        lines.append(REINDEXING_NOTE)
    if not found:
        lines.append("Nothing is remembered about that.")
    lines += [f"- {item.value.get('text', '')}" for item in found]
    return "\n".join(lines)
