"""``/runs``: the record of each answer, and its event stream (live or replayed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse

from api.deps import CurrentUser, State
from api.schemas.common import Page
from api.schemas.events import NATIVE_EVENT, PROTOCOL_EVENT, sse_content
from api.schemas.messages import RunOut
from api.services import runs as runs_service
from api.wire.sse import parse_last_event_id, run_stream

router = APIRouter(tags=["runs"])


@router.get("/runs/{run_id}", response_model=RunOut)
async def get_run(run_id: UUID, user: CurrentUser, state: State) -> Mapping[str, Any]:
    return await runs_service.get_owned(state, user["id"], run_id)


@router.get(
    "/runs/{run_id}/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "The run's events (replayed, then live), `end` last; a run the "
            "Agent Protocol started sends its events",
            "content": sse_content({"anyOf": [NATIVE_EVENT, PROTOCOL_EVENT]}),
        }
    },
)
async def stream_run(
    run_id: UUID,
    user: CurrentUser,
    state: State,
    last_event_id: Annotated[int | None, Query(ge=0, le=10**18)] = None,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", include_in_schema=False)
    ] = None,
) -> Response:
    """The run's events after `Last-Event-ID` (header or query), then the live tail."""
    _, run_log = await runs_service.owned_events(state, user["id"], run_id)
    # A header that is no plain decimal event id is ignored: a full replay.
    after = parse_last_event_id(last_event_id_header) if last_event_id is None else last_event_id
    return run_stream(
        run_log,
        after=after,
        shutdown=state.runs.shutdown,
    )


class CancelOut(BaseModel):
    run_id: UUID
    status: str
    cancelled: bool = Field(description="False when the run had already ended")


@router.post("/runs/{run_id}/cancel", response_model=CancelOut)
async def cancel_run(run_id: UUID, user: CurrentUser, state: State) -> dict[str, Any]:
    """Stop a run. Its stream ends with `end` status `cancelled`; the chat stays usable.

    Cancelling a run that already ended changes nothing and says so (`cancelled: false`).
    """
    run, cancelled = await runs_service.stop(state, user["id"], run_id, "cancelled", wait=5)
    return {"run_id": run_id, "status": run["status"], "cancelled": cancelled}


@router.get("/chats/{chat_id}/runs", response_model=Page[RunOut])
async def list_runs(
    chat_id: UUID,
    user: CurrentUser,
    state: State,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """The chat's runs, newest first."""
    rows, total = await runs_service.list_for_chat(
        state, user["id"], chat_id, limit=limit, offset=offset
    )
    return {"items": rows, "total": total, "limit": limit, "offset": offset}
