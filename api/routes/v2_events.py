"""The v2 event stream of a thread (``langgraph-api`` ≥ 0.10): ``POST …/stream/events`` (SSE,
one filter per connection, ``since`` to resume), ``POST …/commands`` (``run.start``), and the
same over a WebSocket at ``…/stream/events`` (commands and subscriptions on one socket)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from uuid import UUID

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from api.deps import CurrentUser, State
from api.openapi import errors
from api.schemas.events import JSON, sse_content
from api.schemas.v2 import (
    COMMAND_ERROR,
    COMMAND_SUCCESS,
    V2_EVENT,
    EventStreamRequest,
    HttpCommand,
)
from api.services import v2_events as service
from api.wire.sse import thread_stream
from api.wire.v2 import Filter
from graphs.events import encode

router = APIRouter(tags=["agent protocol: v2 events"])

_EVENTS_SSE = {
    "responses": {
        200: {
            "description": "The thread's v2 events that match the filter, after `since`: its "
            "runs' events, replayed, then live until the client leaves",
            "content": sse_content(V2_EVENT),
        }
    }
}
# A command refused, in the official envelope; or a body that is no JSON at all, in the
# shape of every other error.
_COMMAND_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": description,
        "content": {
            JSON: {"schema": {"anyOf": [COMMAND_ERROR, {"$ref": "#/components/schemas/ErrorBody"}]}}
        },
    }
    for status, description in (
        (
            400,
            "An unknown command (`unknown_command`), a WebSocket-only one (`unsupported`), "
            "or `run.start` params that are no run (`invalid_argument`)",
        ),
    )
}


@router.post(
    "/threads/{thread_id}/stream/events",
    response_class=EventSourceResponse,
    openapi_extra=_EVENTS_SSE,
    responses=errors(404),
)
async def stream_events(
    thread_id: UUID, body: EventStreamRequest, user: CurrentUser, state: State
) -> EventSourceResponse:
    """The thread's v2 events: `lifecycle`, `values`, `updates`, `messages`, `custom`,
    `input.requested`, each with its thread-level `seq` (also the SSE `id`) and `event_id`.
    Sends those of `channels` in `namespaces` (prefixes, `depth` levels below): with `since`,
    every one with a `seq` above it, across the thread's runs; without, those of the thread's
    current run (its oldest active one, else its newest) and of each run it gets next."""
    await service.check_thread(state, user["id"], thread_id)
    wanted = Filter(body.channels, body.namespaces, body.depth)
    since = body.since or 0
    # Without ``since``: from the thread's current run (``service.current_run``).
    start = None if body.since is not None else await service.current_run(state, thread_id)

    async def parts() -> Any:
        async for batch in service.thread_events(state, user["id"], thread_id):
            yield [
                (str(event["seq"]), event["method"], encode(event))
                for key, event in batch
                if event["seq"] > since
                and (start is None or key >= start)
                and wanted.matches(event)
            ]

    return thread_stream(parts(), shutdown=state.runs.shutdown)


@router.post(
    "/threads/{thread_id}/commands",
    response_class=JSONResponse,
    response_description="The command's result",
    responses={
        200: {"content": {JSON: {"schema": COMMAND_SUCCESS}}},
        **_COMMAND_ERRORS,
        **errors(404, 409, 429),
    },
)
async def command(
    thread_id: UUID, body: HttpCommand, user: CurrentUser, state: State
) -> JSONResponse:
    """One protocol command: `run.start` `{assistant_id, input, config, metadata,
    multitask_strategy …}` starts a run on the thread (created if it does not exist) and
    answers `{run_id}`; `input.respond` `{interrupt_id, response}` (or `responses`) resumes
    what the thread waits on with a run of its agent. Their events come on the thread's v2
    stream. Errors keep the official
    envelope `{type: "error", id, error, message}`, with an HTTP status and `code`."""
    try:
        result = await service.http_command(state, user["id"], thread_id, body.method, body.params)
    except service.CommandError as exc:
        envelope = service.error_envelope(body.id, exc.error, exc.message)
        return JSONResponse(envelope, status_code=exc.status)
    # Over HTTP no events were sent on this connection: nothing is applied through a seq.
    return JSONResponse(service.success(body.id, result, 0))


# Close codes: 4000 + the HTTP status the SSE route would answer, which the JS SDK reads as
# that status (a 4xx other than 408/429 ends its stream instead of reconnecting).
_UNAUTHORIZED = 4401
_GONE = 4404
_RESTARTING = 1012
_BROKEN = 1011


@router.websocket("/threads/{thread_id}/stream/events")
async def events_socket(websocket: WebSocket, thread_id: UUID) -> None:
    """Commands and subscriptions on one socket; authenticated with the same bearer token (or
    API key) in the handshake's `Authorization` header, or an API key in its `x-api-key`."""
    state = websocket.app.state.switchboard
    user_id = await service.socket_user(
        state, websocket.headers.get("authorization"), websocket.headers.get("x-api-key")
    )
    await websocket.accept()
    if user_id is None:
        await websocket.close(code=_UNAUTHORIZED, reason="Not authenticated")
        return

    async def send(message: dict[str, Any]) -> None:
        await websocket.send_text(encode(message))

    # A thread that does not exist yet (or is another user's: the same, nothing revealed)
    # sends nothing until a ``run.start`` makes it the user's.
    session = service.SocketSession(state, user_id, thread_id, send)
    await session.open()
    try:
        async with _closing_when_ended(websocket, session, state):
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                # A binary frame is read as UTF-8 text (an invalid command if it is none).
                raw = message.get("text") or (message.get("bytes") or b"").decode(
                    "utf-8", "replace"
                )
                answer = await session.handle(raw)
                await session.send_answer(answer)
    except WebSocketDisconnect:
        pass
    finally:
        await session.close()


@contextlib.asynccontextmanager
async def _closing_when_ended(websocket: WebSocket, session: Any, state: Any) -> Any:
    """Close the socket once the session's reading ends: 4404 when the thread was deleted,
    1012 when the server stops, 1011 when reading failed (the SDK reconnects)."""

    async def watch() -> None:
        await session.ended.wait()
        shutdown, _ = state.runs.shutdown
        if shutdown.is_set():
            code = _RESTARTING
        else:
            code = _BROKEN if session.failed else _GONE
        with contextlib.suppress(Exception):
            await websocket.close(code=code)

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
