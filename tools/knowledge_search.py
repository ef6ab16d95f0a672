"""``knowledge_search``: passages of the agent's knowledge base and of the current chat's files.

Which agent, chat and user a search is for comes from the run's context, which the server
builds (the run's agent, its chat, the chat's owner), never from the tool's arguments: the
model chooses only the question and how many passages. Those three go into the SQL's ``WHERE``
(``storage/knowledge.py``), so whatever the model passes, nothing of another agent's documents or
another user's files can come back.

The result is ``content_and_artifact``: the passages as text for the model, each with its
citation id (the chunk's id), and ``{"citations": [{document_id, title, chunk_id}]}`` as the
artifact, which the agent's final answer of the turn carries in ``metadata.citations``.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from langchain.tools import ToolRuntime
from langchain_core.tools import tool
from pydantic import Field

from graphs.spec import AgentContext
from tools.errors import ToolInputError

NAME = "knowledge_search"
INDEXING_NOTE = "Note: some documents are still being indexed; these results may be incomplete."
REINDEXING_NOTE = (
    "Note: the knowledge base is being re-indexed for a new embedding model; some documents are "
    "missing from these results until it is done."
)


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


@tool(NAME, response_format="content_and_artifact")
async def knowledge_search(
    query: Annotated[
        str,
        Field(min_length=1, max_length=2000, description="What to look for, in plain words"),
    ],
    runtime: ToolRuntime[AgentContext, Any],
    k: Annotated[int, Field(ge=1, le=20, description="How many passages (1 to 20)")] = 5,
) -> tuple[str, dict[str, Any]]:
    """Search this agent's knowledge base and the files attached to this chat for passages
    about `query`. Cite a passage by its citation id. `k` is how many passages (1-20)."""
    context = runtime.context
    knowledge = getattr(context, "knowledge", None)
    agent_id = _uuid(getattr(context, "agent_id", None))
    if knowledge is None or agent_id is None:
        raise ToolInputError("the knowledge base is not available in this conversation.")
    if not query.strip():
        raise ToolInputError("query must not be blank.")
    result = await knowledge.search(
        query=query, k=k, agent_id=agent_id,
        chat_id=_uuid(getattr(context, "chat_id", None)),
        user_id=_uuid(getattr(context, "user_id", None)),
    )  # fmt: skip
    lines = []
    if result.indexing:
        lines.append(INDEXING_NOTE)
    if result.reindexing:
        lines.append(REINDEXING_NOTE)
    if not result.items:
        lines.append("No passage of the knowledge base matches this query.")
    for number, item in enumerate(result.items, start=1):
        lines.append(f"[{number}] {item['title']} (citation: {item['chunk_id']})\n{item['text']}")
    citations = [
        {
            "document_id": str(item["document_id"]),
            "title": item["title"],
            "chunk_id": str(item["chunk_id"]),
        }
        for item in result.items
    ]
    return "\n\n".join(lines), {"citations": citations}
