"""Agent Protocol threads: a thread is a chat, with its checkpointed state and history."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from api.deps import CurrentUser, CurrentUserId, State
from api.schemas.protocol import (
    HistoryQuery,
    StateUpdate,
    ThreadCreate,
    ThreadPatch,
    ThreadSearch,
)
from api.services import chats as chats_service
from api.services import threads as service

router = APIRouter(prefix="/threads", tags=["agent protocol: threads"])


def _json(content: Any) -> JSONResponse:
    return JSONResponse(jsonable_encoder(content))


@router.post("")
async def create_thread(body: ThreadCreate, user_id: CurrentUserId, state: State) -> JSONResponse:
    """A new thread (with `thread_id` to choose its id; `if_exists`: `raise` or `do_nothing`)."""
    return _json(await service.create(state, user_id, body))


@router.post("/search")
async def search_threads(body: ThreadSearch, user: CurrentUser, state: State) -> JSONResponse:
    """Your threads (never anyone else's, whatever the filter), newest first by default."""
    return _json(await service.search(state, user["id"], body))


@router.post("/count")
async def count_threads(body: ThreadSearch, user: CurrentUser, state: State) -> JSONResponse:
    return _json(await service.count(state, user["id"], body))


@router.get("/{thread_id}")
async def get_thread(thread_id: UUID, user: CurrentUser, state: State) -> JSONResponse:
    return _json(await service.thread_json(state, await service.owned(state, user, thread_id)))


@router.patch("/{thread_id}")
async def patch_thread(
    thread_id: UUID, body: ThreadPatch, user: CurrentUser, state: State
) -> JSONResponse:
    """Merge `metadata` into the thread's."""
    return _json(await service.merge_metadata(state, user, thread_id, body.metadata))


@router.delete("/{thread_id}", status_code=204)
async def delete_thread(thread_id: UUID, user: CurrentUser, state: State) -> Response:
    """Delete the thread with its runs and every checkpoint (an active run is stopped first)."""
    await chats_service.delete(state, user["id"], thread_id, not_found=service.THREAD_NOT_FOUND)
    return Response(status_code=204)


@router.get("/{thread_id}/state")
async def get_state(thread_id: UUID, user: CurrentUser, state: State) -> JSONResponse:
    """The thread's latest state: values, next nodes, tasks (with interrupts), checkpoint."""
    return _json(await service.get_state(state, user, thread_id))


@router.post("/{thread_id}/state")
async def update_state(
    thread_id: UUID, body: StateUpdate, user: CurrentUser, state: State
) -> JSONResponse:
    """Write `values` as if node `as_node` had; answers the new checkpoint."""
    return _json(await service.update_state(state, user, thread_id, body))


@router.get("/{thread_id}/state/{checkpoint_id}")
async def get_state_at(
    thread_id: UUID,
    checkpoint_id: str,
    user: CurrentUser,
    state: State,
) -> JSONResponse:
    """The thread's state at one checkpoint."""
    return _json(await service.get_state(state, user, thread_id, checkpoint_id))


@router.post("/{thread_id}/state/checkpoint")
async def get_state_at_body(
    thread_id: UUID, body: HistoryQuery, user: CurrentUser, state: State
) -> JSONResponse:
    checkpoint_id = body.checkpoint.checkpoint_id if body.checkpoint else None
    return _json(await service.get_state(state, user, thread_id, checkpoint_id))


@router.get("/{thread_id}/history")
async def get_history(
    thread_id: UUID,
    user: CurrentUser,
    state: State,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> JSONResponse:
    """Past states, newest first."""
    query = HistoryQuery(limit=limit, before=before)
    return _json(await service.history(state, user, thread_id, query))


@router.post("/{thread_id}/history")
async def post_history(
    thread_id: UUID, body: HistoryQuery, user: CurrentUser, state: State
) -> JSONResponse:
    """Past states, newest first (`limit`, `before`, `metadata`, `checkpoint`)."""
    return _json(await service.history(state, user, thread_id, body))
