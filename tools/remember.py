"""``remember``: keep a fact about the user for later chats (long-term memory)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from langchain.tools import ToolRuntime
from langchain_core.tools import tool
from pydantic import Field

from tools.errors import ToolInputError
from tools.memory import memory_namespace

MAX_TEXT = 2000


@tool("remember")
async def remember(
    text: Annotated[
        str,
        Field(description="The fact to keep, as one self-contained sentence.", max_length=MAX_TEXT),
    ],
    runtime: ToolRuntime[Any, Any],
    key: Annotated[
        str | None,
        Field(
            description="A short name for it, to replace an earlier memory of that name "
            "(letters, digits, - and _). Leave out for a new memory.",
            pattern=r"^[A-Za-z0-9_-]{1,64}$",
        ),
    ] = None,
) -> str:
    """Remember something the user told you about themselves (preferences, facts, plans),
    so it can be recalled in any later chat with them. Returns the memory's key."""
    text = text.strip()
    if not text:
        raise ToolInputError("Nothing to remember: the text is empty.")
    store, namespace = memory_namespace(runtime)
    key = key or uuid.uuid4().hex
    await store.aput(namespace, key, {"text": text})
    return f"Remembered ({key}): {text}"
