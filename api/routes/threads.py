"""Agent Protocol threads: a thread is a chat, with its checkpointed state and history."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from api.deps import CurrentUser, State, TokenUserId
from api.openapi import PAGINATED, errors
from api.schemas.protocol import (
    HistoryQuery,
    StateUpdate,
    ThreadCreate,
    ThreadPatch,
    ThreadPrune,
    ThreadSearch,
)
from api.schemas.protocol_out import (
    Thread,
    ThreadPruneResponse,
    ThreadState,
    ThreadStateUpdateResponse,
    ThreadWithTtl,
)
from api.services import chats as chats_service
from api.services import lifecycle
from api.services import threads as service
from api.wire.protocol import json_response, pagination_headers

router = APIRouter(prefix="/threads", tags=["agent protocol: threads"])


@router.post("", response_model=Thread, responses=errors(409))
async def create_thread(body: ThreadCreate, user_id: TokenUserId, state: State) -> JSONResponse:
    """A new thread (with `thread_id` to choose its id; `if_exists`: `raise` or `do_nothing`)."""
    return json_response(await service.create(state, user_id, body))


@router.post("/search", response_model=list[Thread], responses={200: PAGINATED})
async def search_threads(body: ThreadSearch, user: CurrentUser, state: State) -> JSONResponse:
    """Your threads (never anyone else's, whatever the filter), newest first by default;
    `X-Pagination-Total` says how many match, `X-Pagination-Next` the next page's offset."""
    page, total = await service.search_page(state, user["id"], body)
    return json_response(page, pagination_headers(body.offset, body.limit, len(page), total))


@router.post("/count", response_model=int)
async def count_threads(body: ThreadSearch, user: CurrentUser, state: State) -> JSONResponse:
    return json_response(await service.count(state, user["id"], body))


@router.post("/prune", response_model=ThreadPruneResponse, responses=errors(404))
async def prune_threads(body: ThreadPrune, user: CurrentUser, state: State) -> JSONResponse:
    """Prune threads of yours now: `delete` removes each with its runs and checkpoints (an
    active run is stopped first), `keep_latest` keeps each thread with only its latest
    checkpoint (a thread with an active run is skipped). An id that is not one of your threads
    is a 404 and nothing is pruned."""
    count = await lifecycle.prune(state, user["id"], body.thread_ids, body.strategy)
    return json_response({"pruned_count": count})


@router.get("/{thread_id}", response_model=ThreadWithTtl)
async def get_thread(
    thread_id: UUID,
    user: CurrentUser,
    state: State,
    include: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=r"^[a-z_]*(,[a-z_]*)*$",
            description="Comma-separated extra fields: `ttl` (others are ignored)",
        ),
    ] = None,
) -> JSONResponse:
    thread = await service.thread_json(state, await service.owned(state, user, thread_id))
    if include and "ttl" in include.split(","):
        thread["ttl"] = await lifecycle.get_ttl(state, user["id"], thread_id)
    return json_response(thread)


@router.patch("/{thread_id}", response_model=Thread)
async def patch_thread(
    thread_id: UUID, body: ThreadPatch, user: CurrentUser, state: State
) -> JSONResponse:
    """Merge `metadata` into the thread's; `ttl` gives it a time to live counted from now."""
    return json_response(
        await service.merge_metadata(state, user, thread_id, body.metadata, body.ttl)
    )


@router.delete("/{thread_id}", status_code=204, response_class=Response)
async def delete_thread(thread_id: UUID, user: CurrentUser, state: State) -> Response:
    """Delete the thread with its runs and every checkpoint (an active run is stopped first)."""
    await chats_service.delete(state, user["id"], thread_id, not_found=service.THREAD_NOT_FOUND)
    return Response(status_code=204)


@router.post("/{thread_id}/copy", response_model=Thread)
async def copy_thread(thread_id: UUID, user: CurrentUser, state: State) -> JSONResponse:
    """A new thread of yours with this one's metadata, state and every checkpoint."""
    return json_response(await service.copy(state, user, thread_id))


@router.get("/{thread_id}/state", response_model=ThreadState)
async def get_state(thread_id: UUID, user: CurrentUser, state: State) -> JSONResponse:
    """The thread's latest state: values, next nodes, tasks (with interrupts), checkpoint."""
    return json_response(await service.get_state(state, user, thread_id))


@router.post("/{thread_id}/state", response_model=ThreadStateUpdateResponse, responses=errors(409))
async def update_state(
    thread_id: UUID, body: StateUpdate, user: CurrentUser, state: State
) -> JSONResponse:
    """Write `values` as if node `as_node` had; answers the new checkpoint."""
    return json_response(await service.update_state(state, user, thread_id, body))


@router.get("/{thread_id}/state/{checkpoint_id}", response_model=ThreadState)
async def get_state_at(
    thread_id: UUID,
    checkpoint_id: str,
    user: CurrentUser,
    state: State,
) -> JSONResponse:
    """The thread's state at one checkpoint."""
    return json_response(await service.get_state(state, user, thread_id, checkpoint_id))


@router.post("/{thread_id}/state/checkpoint", response_model=ThreadState)
async def get_state_at_body(
    thread_id: UUID, body: HistoryQuery, user: CurrentUser, state: State
) -> JSONResponse:
    checkpoint_id = body.checkpoint.checkpoint_id if body.checkpoint else None
    return json_response(await service.get_state(state, user, thread_id, checkpoint_id))


@router.get("/{thread_id}/history", response_model=list[ThreadState])
async def get_history(
    thread_id: UUID,
    user: CurrentUser,
    state: State,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> JSONResponse:
    """Past states, newest first; a page stops at `SWITCHBOARD_HISTORY_MAX_BYTES` of JSON, so it
    may hold fewer than `limit` (page on with `before`)."""
    query = HistoryQuery(limit=limit, before=before)
    return json_response(await service.history(state, user, thread_id, query))


@router.post("/{thread_id}/history", response_model=list[ThreadState])
async def post_history(
    thread_id: UUID, body: HistoryQuery, user: CurrentUser, state: State
) -> JSONResponse:
    """Past states, newest first (`limit`, `before`, `metadata`, `checkpoint`)."""
    return json_response(await service.history(state, user, thread_id, body))
