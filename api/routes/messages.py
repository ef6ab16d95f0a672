"""``/chats/{id}/messages``: read a conversation, send a message and get (or watch) the answer."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import APIRouter, Header, Path, Query, status
from fastapi.responses import JSONResponse, Response

from api.deps import CurrentUser, CurrentUserId, State, TokenUserId
from api.openapi import errors
from api.schemas.chats import ForkOut
from api.schemas.events import NATIVE_EVENT, sse_content
from api.schemas.messages import (
    MAX_IMAGES,
    ApprovalCreate,
    ChatState,
    ForkCreate,
    HistoryPage,
    MessageCreate,
    MessagePage,
    Regenerate,
    RunAnswer,
)
from api.services import approvals as approvals_service
from api.services import chats as chats_service
from api.services import forks as forks_service
from api.services import messages as messages_service
from api.settings import Settings
from api.state import AppState
from api.wire.sse import run_stream, wants_event_stream
from graphs.events import EventSource, read_all

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


SEND_PATH: Final = "/chats/{chat_id}/messages"
# A fork's edit is a message too, with the same room for images.
FORK_PATH: Final = "/chats/{chat_id}/fork"


def send_limit(settings: Settings) -> int:
    """The body a message may have: the usual limit, and room for its images as base64."""
    return settings.max_body_bytes + MAX_IMAGES * ((settings.image_max_bytes + 2) // 3 * 4)


@router.get("/{chat_id}/messages", response_model=MessagePage)
async def list_messages(
    chat_id: UUID,
    user: CurrentUser,
    state: State,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> dict[str, Any]:
    """The chat's messages (yours, or shared with you), oldest first; page back with
    `before=<oldest id you have>`."""
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
    """The chat's checkpoints (every saved state of its thread; yours, or shared with you),
    newest first; page back with `before=<the last checkpoint_id you have>`. A `before` that
    names no checkpoint of the chat is a 404 `checkpoint_not_found`."""
    return await messages_service.history(state, user, chat_id, limit=limit, before=before)


@router.get("/{chat_id}/state", response_model=ChatState, responses=errors(404))
async def chat_state(
    chat_id: UUID, user: CurrentUser, state: State, checkpoint_id: CheckpointId | None = None
) -> dict[str, Any]:
    """The chat's messages (as `GET /chats/{id}/messages` shows them; yours, or shared with
    you) and the nodes to run next, at `checkpoint_id` (from the history) or, without it,
    now. An unknown checkpoint is a 404 `checkpoint_not_found`."""
    return await messages_service.state_at(state, user, chat_id, checkpoint_id)


@router.post(
    "/{chat_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=RunAnswer,
    openapi_extra=_STREAM_DOC,
    responses=errors(409, 429),
)
async def send_message(
    chat_id: UUID,
    body: MessageCreate,
    user_id: TokenUserId,
    state: State,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """Send a message; the chat's agent answers.

    With `Accept: application/json` (the default) the call waits for the answer. With
    `Accept: text/event-stream` it streams the run's events (`run`, `message`, `token`,
    `tool_call`, `tool_result`, `error`, `end`) as they happen.

    `content` is text, or a list of parts: `{type: "text", text}` and `{type: "image", url}`
    (a base64 data URL of a PNG, JPEG, GIF or WebP image). Each image is checked: its data must
    be base64 (`invalid_base64`), of at most `SWITCHBOARD_IMAGE_MAX_BYTES`
    (`image_too_large`), and an image of the type it says (`invalid_image`); at most four
    (`too_many_images`); an agent whose model cannot see images refuses them
    (`model_cannot_see_images`). Each is a 422 and nothing is created.
    """
    run, run_log = await messages_service.send(
        state, user_id, chat_id, body.content, body.multitask_strategy, body.webhook
    )
    return await _respond(state, run, run_log, accept=accept, on_disconnect=body.on_disconnect)


@router.post(
    "/{chat_id}/approvals",
    status_code=status.HTTP_201_CREATED,
    response_model=RunAnswer,
    openapi_extra=_STREAM_DOC,
    responses=errors(409, 422, 429),
)
async def decide_on_tool_calls(
    chat_id: UUID,
    body: ApprovalCreate,
    user_id: TokenUserId,
    state: State,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """Decide on the tool calls waiting for approval (the last run ended `interrupted` after an
    `approval_required` event naming them): `approve` runs a call as the model made it, `edit`
    runs it with your `args`, `reject` gives the model the rejection (and your `reason`) as its
    result. The paused turn goes on as a new run, answered like `POST /chats/{id}/messages`.

    One decision per waiting call: others are a 422 `decisions_do_not_match`; a chat waiting
    for none is a 409 `no_approval_pending`.
    """
    decisions = [decision.model_dump() for decision in body.decisions]
    run, run_log = await approvals_service.decide(state, user_id, chat_id, decisions)
    return await _respond(state, run, run_log, accept=accept, on_disconnect=body.on_disconnect)


async def _respond(
    state: AppState,
    run: Mapping[str, Any],
    run_log: EventSource,
    *,
    accept: str | None,
    on_disconnect: str,
    chat: dict[str, Any] | None = None,
) -> Response:
    """A started run's answer: its events as SSE, or (waited for) its messages as JSON; with
    ``chat`` (a fork), the new chat's body holds the answer as ``run``."""
    locations = {"Location": f"/runs/{run['id']}/stream", "Content-Location": f"/runs/{run['id']}"}
    if chat is not None:
        locations["Location"] = f"/chats/{chat['id']}"
    cancel = None
    if on_disconnect == "cancel":
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
    content: dict[str, Any] = answer.model_dump(mode="json")
    if chat is not None:
        content = ForkOut.model_validate({**chat, "run": content}).model_dump(mode="json")
    return JSONResponse(content, status_code=status.HTTP_201_CREATED, headers=locations)


@router.post(
    "/{chat_id}/messages/{message_id}/regenerate",
    status_code=status.HTTP_201_CREATED,
    response_model=RunAnswer,
    openapi_extra=_STREAM_DOC,
    responses=errors(409, 422, 429),
)
async def regenerate(
    chat_id: UUID,
    message_id: Annotated[str, Path(min_length=1, max_length=200)],
    user_id: TokenUserId,
    state: State,
    body: Regenerate | None = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """Answer the chat's last user message again. The thread branches just before it: the chat
    shows the new answer, and the one it replaces stays in `GET /chats/{id}/history`. Another
    message is a 422 (`not_a_user_message`, `not_the_last_user_message`)."""
    run, run_log = await forks_service.regenerate(state, user_id, chat_id, message_id)
    on_disconnect = body.on_disconnect if body is not None else "continue"
    return await _respond(state, run, run_log, accept=accept, on_disconnect=on_disconnect)


@router.post(
    "/{chat_id}/fork",
    status_code=status.HTTP_201_CREATED,
    response_model=ForkOut,
    openapi_extra={
        "responses": {
            200: {
                "description": "With an `edit` and `Accept: text/event-stream`: the answer's "
                "run events as they happen (the new chat is the `Location` header)",
                "content": sse_content(NATIVE_EVENT),
            }
        }
    },
    responses=errors(404, 409, 422, 429),
)
async def fork_chat(
    chat_id: UUID,
    body: ForkCreate,
    user_id: CurrentUserId,
    state: State,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """A new chat (yours, with the same agent) whose history is this one's up to
    `checkpoint_id` (the latest without it); the original is not changed. With `edit`, the
    history stops just before that user message and the new chat answers its new content at
    once, as `POST /chats/{id}/messages` would (`run` in the body, or SSE)."""
    edit = (body.edit.message_id, body.edit.content) if body.edit is not None else None
    chat, run = await forks_service.fork(
        state, user_id, chat_id, checkpoint_id=body.checkpoint_id, edit=edit
    )
    chat_body = chats_service.chat_out(chat)
    if run is None:
        out = ForkOut.model_validate({**chat_body, "run": None}).model_dump(mode="json")
        return JSONResponse(
            out, status_code=status.HTTP_201_CREATED, headers={"Location": f"/chats/{chat['id']}"}
        )
    return await _respond(
        state, run[0], run[1], accept=accept, on_disconnect=body.on_disconnect, chat=chat_body
    )
