"""``/chats/{id}/messages``: read a conversation, send a message and get (or watch) the answer."""

from __future__ import annotations

import asyncio
import functools
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, status
from fastapi.responses import JSONResponse, Response

from api.deps import CurrentUser, CurrentUserId, State
from api.openapi import errors
from api.schemas.events import NATIVE_EVENT, sse_content
from api.schemas.messages import ChatState, HistoryPage, MessageCreate, MessagePage, RunAnswer
from api.services import messages as messages_service
from api.wire.sse import run_stream, wants_event_stream
from graphs.events import read_all

router = APIRouter(prefix="/chats", tags=["messages"])

_STREAM_DOC = {
    "responses": {
        201: {"description": "The run finished; its new messages, in order"},
        200: {
            "description": "With `Accept: text/event-stream`: the run's events as they happen",
            "content": sse_content(NATIVE_EVENT),
        },
    }
}


@router.get("/{chat_id}/messages", response_model=MessagePage)
async def list_messages(
    chat_id: UUID,
    user: CurrentUser,
    state: State,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> dict[str, Any]:
    """The chat's messages, oldest first; page back with `before=<oldest id you have>`."""
    return await messages_service.page(state, user, chat_id, limit=limit, before=before)


# Checkpoint ids are LangGraph's (UUIDv6 text); anything longer names nothing.
CheckpointId = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z-]+$")]


@router.get("/{chat_id}/history", response_model=HistoryPage, responses=errors(404))
async def chat_history(
    chat_id: UUID,
    user: CurrentUser,
    state: State,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    before: CheckpointId | None = None,
) -> dict[str, Any]:
    """The chat's checkpoints (every saved state of its thread), newest first; page back with
    `before=<the last checkpoint_id you have>`. A `before` that names no checkpoint of the chat
    is a 404 `checkpoint_not_found`."""
    return await messages_service.history(state, user, chat_id, limit=limit, before=before)


@router.get("/{chat_id}/state", response_model=ChatState, responses=errors(404))
async def chat_state(
    chat_id: UUID, user: CurrentUser, state: State, checkpoint_id: CheckpointId | None = None
) -> dict[str, Any]:
    """The chat's messages (as `GET /chats/{id}/messages` shows them) and the nodes to run
    next, at `checkpoint_id` (from the history) or, without it, now. An unknown checkpoint is a
    404 `checkpoint_not_found`."""
    return await messages_service.state_at(state, user, chat_id, checkpoint_id)


@router.post(
    "/{chat_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=RunAnswer,
    openapi_extra=_STREAM_DOC,
    responses=errors(409),
)
async def send_message(
    chat_id: UUID,
    body: MessageCreate,
    user_id: CurrentUserId,
    state: State,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """Send a message; the chat's agent answers.

    With `Accept: application/json` (the default) the call waits for the answer. With
    `Accept: text/event-stream` it streams the run's events (`run`, `message`, `token`,
    `tool_call`, `tool_result`, `error`, `end`) as they happen.
    """
    run, run_log = await messages_service.send(
        state, user_id, chat_id, body.content, body.multitask_strategy
    )
    locations = {"Location": f"/runs/{run['id']}/stream", "Content-Location": f"/runs/{run['id']}"}
    cancel = None
    if body.on_disconnect == "cancel":
        cancel = functools.partial(state.runs.request_stop, run["id"])
    if wants_event_stream(accept):
        return run_stream(
            run_log,
            headers=locations,
            on_disconnect=cancel,
            shutdown=state.runs.shutdown,
        )
    try:
        events = await read_all(run_log)
    except asyncio.CancelledError:
        # The client went away while waiting for the answer.
        if cancel is not None:
            cancel()
        raise
    answer = RunAnswer.model_validate(messages_service.answer(run, events))
    return JSONResponse(
        answer.model_dump(mode="json"), status_code=status.HTTP_201_CREATED, headers=locations
    )
