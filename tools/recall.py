"""``recall``: find what was remembered about the user (long-term memory)."""

from __future__ import annotations

from typing import Annotated, Any

from langchain.tools import ToolRuntime
from langchain_core.tools import tool
from pydantic import Field

from tools.memory import memory_namespace


@tool("recall")
async def recall(
    query: Annotated[
        str, Field(description="What to look for, in plain words.", min_length=1, max_length=2000)
    ],
    runtime: ToolRuntime[Any, Any],
    k: Annotated[int, Field(description="How many memories at most.", ge=1, le=20)] = 5,
) -> str:
    """Search what you remembered about the user in earlier chats, closest in meaning first.
    Returns one memory per line, or says that nothing is remembered."""
    store, namespace = memory_namespace(runtime)
    found = await store.asearch(namespace, query=query, limit=k)
    if not found:
        return "Nothing is remembered about that."
    return "\n".join(f"- {item.value.get('text', '')}" for item in found)
