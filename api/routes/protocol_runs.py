"""Agent Protocol runs: ``/threads/{id}/runs…``, a thread's stream (``/threads/{id}/stream``),
the stateless ``/runs``, ``/runs/batch``, ``/runs/stream``, ``/runs/wait``, and ``/runs/cancel``.

Same runs, same event logs and the same rules as the native API (one run per thread,
strategies, resume with ``Last-Event-ID``, cancel); the events are LangGraph's stream modes.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Header, Query, Response
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from api.deps import CurrentUser, State, TokenUserId
from api.openapi import PAGINATED, errors
from api.schemas.events import NATIVE_EVENT, PROTOCOL_EVENT, THREAD_EVENT, sse_content
from api.schemas.protocol_out import Run
from api.schemas.protocol_runs import MAX_BATCH_RUNS, RunCreate, RunsCancel
from api.services import protocol_runs as service
from api.services import runs as runs_service
from api.wire.protocol import json_response, pagination_headers, thread_events
from api.wire.sse import parse_last_event_id, parse_thread_event_id, run_stream, thread_stream
from graphs.events import Event

router = APIRouter(tags=["agent protocol: runs"])

_SSE = {
    "responses": {
        200: {
            "description": "The run's events in the requested stream modes, then `end`",
            "content": sse_content(PROTOCOL_EVENT),
        }
    }
}
# Any run, whichever API started it, can be joined here (a chat is a thread): its events are
# in the format of the API that started it.
_JOIN_SSE = {
    "responses": {
        200: {
            "description": "The run's events (replayed, then live), `end` last",
            "content": sse_content({"anyOf": [PROTOCOL_EVENT, NATIVE_EVENT]}),
        }
    }
}


_THREAD_SSE = {
    "responses": {
        200: {
            "description": "The thread's runs' events, live, until the client leaves",
            "content": sse_content(THREAD_EVENT),
        }
    }
}
# The routes whose body starts a run, with messages that may hold images: the body limit of a
# native message (``api.routes.messages.send_limit``) is theirs.
RUN_PATHS: Final = (
    "/threads/{thread_id}/runs", "/threads/{thread_id}/runs/stream",
    "/threads/{thread_id}/runs/wait", "/runs", "/runs/stream", "/runs/wait",
)  # fmt: skip

# What a thread's stream sends: every event of each run, or only their lifecycle.
ThreadStreamMode = Literal["run_modes", "lifecycle"]


def _locations(run: Mapping[str, Any], stateless: bool = False) -> dict[str, str]:
    base = f"/runs/{run['id']}" if stateless else f"/threads/{run['chat_id']}/runs/{run['id']}"
    return {"Location": f"{base}/stream", "Content-Location": base}


def _stream(
    state: Any, run: Mapping[str, Any], events: Any, body: RunCreate, stateless: bool
) -> EventSourceResponse:
    cancel = None
    if body.on_disconnect == "cancel":
        cancel = functools.partial(state.runs.request_stop, run["id"])
    return run_stream(
        events,
        headers=_locations(run, stateless),
        on_disconnect=cancel,
        shutdown=state.runs.shutdown,
    )


@router.post("/threads/{thread_id}/runs", response_model=Run, responses=errors(409, 429))
async def create_run(
    thread_id: UUID, body: RunCreate, user_id: TokenUserId, state: State
) -> JSONResponse:
    """Start a run in the background; join it or stream it later."""
    run, _, _ = await service.start(state, user_id, thread_id, body)
    return json_response(service.run_json(run), headers=_locations(run))


@router.post(
    "/threads/{thread_id}/runs/stream",
    response_class=EventSourceResponse,
    openapi_extra=_SSE,
    responses=errors(409, 429),
)
async def stream_run(
    thread_id: UUID, body: RunCreate, user_id: TokenUserId, state: State
) -> EventSourceResponse:
    """Start a run and stream its events."""
    run, events, _ = await service.start(state, user_id, thread_id, body)
    return _stream(state, run, events, body, stateless=False)


@router.post(
    "/threads/{thread_id}/runs/wait", response_model=dict[str, Any], responses=errors(409, 429)
)
async def wait_run(
    thread_id: UUID, body: RunCreate, user_id: TokenUserId, state: State
) -> JSONResponse:
    """Start a run and answer the thread's values once it ends."""
    run, events, _ = await service.start(state, user_id, thread_id, body)
    headers = {"Location": f"/threads/{thread_id}/runs/{run['id']}/join"}
    return json_response(await service.outcome(state, run, events), headers=headers)


@router.post(
    "/runs/stream",
    response_class=EventSourceResponse,
    openapi_extra=_SSE,
    responses=errors(404, 409, 429),
)
async def stream_stateless(
    body: RunCreate, user_id: TokenUserId, state: State
) -> EventSourceResponse:
    """A run on a new thread, streamed; the thread is deleted afterwards unless
    `on_completion` is `keep`."""
    run, events, _ = await service.start(state, user_id, None, body)
    return _stream(state, run, events, body, stateless=True)


@router.post("/runs", response_model=Run, responses=errors(404, 409, 429))
async def create_stateless(body: RunCreate, user_id: TokenUserId, state: State) -> JSONResponse:
    """A run on a new thread, in the background; the thread is deleted once it ends unless
    `on_completion` is `keep`."""
    run, _, _ = await service.start(state, user_id, None, body)
    return json_response(service.run_json(run), headers=_locations(run, stateless=True))


@router.post(
    "/runs/batch",
    response_model=list[Run],
    response_description="The runs, in the order of the request",
    responses=errors(404, 409, 429),
)
async def create_batch(
    body: Annotated[list[RunCreate], Body(min_length=1, max_length=MAX_BATCH_RUNS)],
    user_id: TokenUserId,
    state: State,
) -> JSONResponse:
    """Several runs on new threads, in the background, as `POST /runs` starts one each; all
    or none: a body with one invalid run (422) or one naming no assistant (404) starts
    nothing."""
    runs = await service.start_batch(state, user_id, body)
    return json_response([service.run_json(run) for run in runs])


@router.post(
    "/runs/cancel",
    status_code=204,
    response_class=Response,
    response_description="The runs named were stopped (those already ended are left as they are)",
    responses=errors(404),
)
async def cancel_many(
    body: RunsCancel,
    user: CurrentUser,
    state: State,
    action: Literal["interrupt", "rollback"] = "interrupt",
) -> Response:
    """Stop several of your runs: every one with `status` (`pending`, `running`, `all`), or
    `run_ids` of your thread `thread_id` (`interrupt` keeps what they checkpointed,
    `rollback` removes it). Answers once they have ended. A 404 when none of your runs
    matches, or none of those is still active; runs of other users are never touched."""
    await service.cancel_many(
        state, user["id"], thread_id=body.thread_id, run_ids=body.run_ids, status=body.status,
        rollback=action == "rollback",
    )  # fmt: skip
    return Response(status_code=204)


@router.post("/runs/wait", response_model=dict[str, Any], responses=errors(404, 409, 429))
async def wait_stateless(body: RunCreate, user_id: TokenUserId, state: State) -> JSONResponse:
    """A run on a new thread; answers its final values."""
    run, events, _ = await service.start(state, user_id, None, body, delete_when_done=False)
    try:
        return json_response(await service.outcome(state, run, events))
    finally:
        if body.on_completion == "delete":
            # After the values are read, and even if the client left while waiting; the answer
            # goes once the thread is gone.
            deletion = state.runs.background(service.delete_after_run(state, run, user_id))
            await asyncio.shield(deletion)


@router.get("/threads/{thread_id}/runs", response_model=list[Run], responses={200: PAGINATED})
async def list_runs(
    thread_id: UUID,
    user: CurrentUser,
    state: State,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    status: Literal["pending", "running", "error", "success", "timeout", "interrupted"]
    | None = None,
) -> JSONResponse:
    """The thread's runs, newest first."""
    rows, total, deliveries = await runs_service.list_for_chat(
        state,
        user["id"],
        thread_id,
        limit=limit,
        offset=offset,
        statuses=service.statuses(status) if status is not None else None,
    )
    headers = pagination_headers(offset, limit, len(rows), total)
    return json_response(
        [service.run_json(row, deliveries.get(row["id"])) for row in rows], headers
    )


@router.get("/threads/{thread_id}/runs/{run_id}", response_model=Run)
async def get_run(thread_id: UUID, run_id: UUID, user: CurrentUser, state: State) -> JSONResponse:
    """The run; `webhook` shows its webhook's delivery attempts."""
    run, delivery = await runs_service.read(state, user["id"], run_id, chat_id=thread_id)
    return json_response(service.run_json(run, delivery))


@router.delete(
    "/threads/{thread_id}/runs/{run_id}",
    status_code=204,
    response_class=Response,
    responses=errors(409),
)
async def delete_run(thread_id: UUID, run_id: UUID, user: CurrentUser, state: State) -> Response:
    """Delete a finished run's record (its checkpoints stay in the thread)."""
    await runs_service.delete_ended(state, user["id"], run_id, thread_id)
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs/{run_id}/join", response_model=dict[str, Any])
async def join_run(thread_id: UUID, run_id: UUID, user: CurrentUser, state: State) -> JSONResponse:
    """Wait for the run to end; answers the thread's values."""
    run = await runs_service.get_owned(state, user["id"], run_id, chat_id=thread_id)
    events = await runs_service.events(state, run)
    if events is None:
        # Its events have expired: the run ended long ago, the thread's state is the answer.
        events = _Ended()
    return json_response(await service.outcome(state, run, events))


class _Ended:
    """The events of a run whose log has expired: none."""

    async def read(self, after: int = 0) -> AsyncIterator[Event]:
        return
        yield

    async def read_batches(self, after: int = 0) -> AsyncIterator[list[Event]]:
        return
        yield


@router.get(
    "/threads/{thread_id}/runs/{run_id}/stream",
    response_class=EventSourceResponse,
    openapi_extra=_JOIN_SSE,
)
async def join_stream(
    thread_id: UUID,
    run_id: UUID,
    user: CurrentUser,
    state: State,
    cancel_on_disconnect: bool = False,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """The run's events after `Last-Event-ID`, then live until `end`."""
    run, events = await runs_service.owned_events(state, user["id"], run_id, chat_id=thread_id)
    after = parse_last_event_id(last_event_id)  # unusable: ignored, a full replay
    cancel = functools.partial(state.runs.request_stop, run_id) if cancel_on_disconnect else None
    return run_stream(
        events,
        after=after,
        headers=_locations(run),
        on_disconnect=cancel,
        shutdown=state.runs.shutdown,
    )


@router.get(
    "/threads/{thread_id}/stream",
    response_class=EventSourceResponse,
    openapi_extra=_THREAD_SSE,
)
async def join_thread_stream(
    thread_id: UUID,
    user: CurrentUser,
    state: State,
    stream_mode: Annotated[
        list[ThreadStreamMode] | None,
        Query(
            description="`run_modes` (default): every event of every run; `lifecycle`: "
            "each run's first event, its `end` and `run_done`"
        ),
    ] = None,
    stream_modes: Annotated[
        list[ThreadStreamMode] | None, Query(description="The same (the official name)")
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """The thread's runs one after the other, live: its current run from its first event
    (or after `Last-Event-ID`, an id this stream sent), then each run it gets next, until you
    close the stream or the thread is deleted. Each run's events are those of the API that
    started it, with the ids `<run id>:<event id>`; after its `end` comes `metadata`
    `{status: "run_done", run_id}`."""
    modes = {*(stream_mode or ()), *(stream_modes or ())}
    lifecycle_only = bool(modes) and "run_modes" not in modes
    runs = await service.thread_runs(
        state, user["id"], thread_id, parse_thread_event_id(last_event_id)
    )

    async def parts() -> AsyncIterator[list[tuple[str, str, str]]]:
        async for run, after, batch in runs:
            yield list(thread_events(run["id"], after, batch, lifecycle_only))

    return thread_stream(parts(), shutdown=state.runs.shutdown)


@router.post(
    "/threads/{thread_id}/runs/{run_id}/cancel",
    response_model=Run,
    response_description="The stopped run (with `wait`)",
    responses={202: {"description": "The stop was asked for (without `wait`): no body"}},
)
async def cancel_run(
    thread_id: UUID,
    run_id: UUID,
    user: CurrentUser,
    state: State,
    wait: bool = False,
    action: Literal["interrupt", "rollback"] = "interrupt",
) -> Response:
    """Stop the run (`interrupt` keeps what it checkpointed, `rollback` removes it)."""
    run, _ = await runs_service.stop(
        state, user["id"], run_id, "interrupted", chat_id=thread_id,
        wait=10 if wait else None, rollback=action == "rollback",
    )  # fmt: skip
    return json_response(service.run_json(run), headers=None) if wait else Response(status_code=202)
