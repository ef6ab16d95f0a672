"""``/users/me/memories``: what agents were told to remember (the ``remember`` tool)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from api.deps import CurrentUserId, State
from api.schemas.common import NoNul
from api.schemas.store import MAX_KEY_LENGTH, MAX_QUERY_LENGTH, MemoryPage
from api.services import store as service

router = APIRouter(prefix="/users/me/memories", tags=["memories"])


@router.get("", response_model=MemoryPage)
async def list_memories(
    user_id: CurrentUserId,
    state: State,
    query: Annotated[str | None, NoNul, Query(min_length=1, max_length=MAX_QUERY_LENGTH)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """Your memories: with `query`, the closest in meaning first (`score`), and `reindexing`
    when some cannot match yet (a new embedding model); else newest first."""
    return await service.memories(state, user_id, query=query, limit=limit, offset=offset)


@router.delete("/{key}", status_code=204, response_class=Response)
async def delete_memory(
    key: Annotated[str, NoNul, Path(min_length=1, max_length=MAX_KEY_LENGTH)],
    user_id: CurrentUserId,
    state: State,
) -> Response:
    """Forget one memory (none with that key: 404 `memory_not_found`)."""
    await service.delete_memory(state, user_id, key)
    return Response(status_code=204)


@router.delete("", status_code=204, response_class=Response)
async def delete_memories(user_id: CurrentUserId, state: State) -> Response:
    """Forget every memory."""
    await service.delete_memories(state, user_id)
    return Response(status_code=204)
