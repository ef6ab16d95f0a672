"""``/chats/{id}/replays`` and ``/replays``: a chat's user messages asked again of another agent
or model, in the background, and the answers compared turn by turn."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from api.deps import CurrentUser, State
from api.openapi import errors
from api.schemas.common import Page
from api.schemas.replays import ReplayCancelOut, ReplayCreate, ReplayOut, ReplaySummary
from api.services import replays as replays_service

router = APIRouter(tags=["replays"])


@router.post(
    "/chats/{chat_id}/replays",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayOut,
    responses=errors(404, 409),
)
async def create_replay(
    chat_id: UUID, body: ReplayCreate, user: CurrentUser, state: State, response: Response
) -> dict[str, Any]:
    """Send each user message of the chat again, in order, to a new chat of yours: to another
    agent (`agent_id`), or to the same agent with another model (`model_name`), or both. Each
    is an ordinary run (see `GET /runs/{id}`, `GET /chats/{id}/runs`); follow the replay with
    `GET /replays/{id}` (`Location`).

    An `agent_id` that names no agent is a 404 `agent_not_found`; a retired agent, a chat with
    an active run or with no user message (`nothing_to_replay`) are a 409."""
    replay = await replays_service.create(
        state, user["id"], chat_id, agent_id=body.agent_id, model_name=body.model_name
    )
    response.headers["Location"] = f"/replays/{replay['id']}"
    return replay


@router.get("/chats/{chat_id}/replays", response_model=Page[ReplaySummary])
async def list_replays(
    chat_id: UUID,
    user: CurrentUser,
    state: State,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """The chat's replays, newest first (`GET /replays/{id}` for their turns)."""
    items, total = await replays_service.list_for_chat(
        state, user["id"], chat_id, limit=limit, offset=offset
    )
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/replays/{replay_id}", response_model=ReplayOut)
async def get_replay(replay_id: UUID, user: CurrentUser, state: State) -> dict[str, Any]:
    """The replay's status and progress, and each turn: the user message, the original and
    the new answer (text, tool calls, tokens, model time; the original's feedback) and their
    similarity."""
    return await replays_service.get(state, user["id"], replay_id)


@router.post("/replays/{replay_id}/cancel", response_model=ReplayCancelOut)
async def cancel_replay(replay_id: UUID, user: CurrentUser, state: State) -> dict[str, Any]:
    """Stop the replay: no further turn is sent and the run in flight is cancelled. On a
    replay that has ended, nothing changes (`cancelled: false`)."""
    replay, cancelled = await replays_service.cancel(state, user["id"], replay_id)
    return {"replay_id": replay_id, "status": replay["status"], "cancelled": cancelled}
