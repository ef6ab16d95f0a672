"""``/runs``: the record of each answer, and its event stream (live or replayed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse

from api.deps import CurrentUser, CurrentUserId, State, authenticate, bearer_token
from api.errors import INVALID_TOKEN, Unauthorized
from api.openapi import errors
from api.schemas.common import Page
from api.schemas.events import NATIVE_EVENT, PROTOCOL_EVENT, sse_content
from api.schemas.messages import RunOut
from api.services import runs as runs_service
from api.services.webhooks import webhook_out
from api.wire.sse import parse_last_event_id, run_stream

router = APIRouter(tags=["runs"])


@router.get("/runs/{run_id}", response_model=RunOut)
async def get_run(run_id: UUID, user: CurrentUser, state: State) -> Mapping[str, Any]:
    """The run; `webhook` shows its webhook's delivery attempts."""
    run, delivery = await runs_service.read(state, user["id"], run_id)
    return {**run, "webhook": webhook_out(run, delivery)}


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
    state: State,
    request: Request,
    token: Annotated[str | None, Depends(bearer_token)],
    stream_token: Annotated[
        str | None,
        Query(
            max_length=2000,
            description="Instead of a bearer token (a browser's `EventSource` cannot send "
            "one): a token from `POST /runs/{run_id}/stream-token`, checked when the stream "
            "opens",
        ),
    ] = None,
    last_event_id: Annotated[int | None, Query(ge=0, le=10**18)] = None,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", include_in_schema=False)
    ] = None,
) -> Response:
    """The run's events after `Last-Event-ID` (header or query; with both, the later), then
    the live tail."""
    if token:
        user_id: UUID | None = await authenticate(state, request, token)
    elif stream_token:
        user_id = state.tokens.stream_subject(stream_token, run_id)
    else:
        raise Unauthorized()
    if user_id is None:
        raise Unauthorized(INVALID_TOKEN)
    _, run_log = await runs_service.owned_events(state, user_id, run_id)
    # A header that is no plain decimal event id is ignored: a full replay. With both, the
    # later id: an EventSource reconnects to the URL it was opened with (its query naming where
    # it first resumed) and names the last event it has seen since in the header.
    after = max(parse_last_event_id(last_event_id_header), last_event_id or 0)
    return run_stream(
        run_log,
        after=after,
        shutdown=state.runs.shutdown,
    )


class StreamTokenOut(BaseModel):
    token: str
    expires_in: int = Field(description="Seconds the token can open the stream for")
    stream_url: str = Field(description="The run's stream, the token in its query")


@router.post("/runs/{run_id}/stream-token", response_model=StreamTokenOut, responses=errors(404))
async def stream_token_for(run_id: UUID, user_id: CurrentUserId, state: State) -> dict[str, Any]:
    """A short-lived token that opens this run's stream (`GET /runs/{run_id}/stream?
    stream_token=…`) without an `Authorization` header, as a browser's `EventSource` must.
    It opens that run's stream only, and only until it expires (`expires_in`; a stream it
    opened goes on); it is no access token. A run whose events have expired is a 404."""
    await runs_service.owned_events(state, user_id, run_id)
    ttl = state.settings.stream_token_ttl_seconds
    token = state.tokens.issue_stream(user_id, run_id, ttl)
    return {
        "token": token,
        "expires_in": ttl,
        "stream_url": f"/runs/{run_id}/stream?stream_token={token}",
    }


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
    rows, total, deliveries = await runs_service.list_for_chat(
        state, user["id"], chat_id, limit=limit, offset=offset
    )
    items = [{**row, "webhook": webhook_out(row, deliveries.get(row["id"]))} for row in rows]
    return {"items": items, "total": total, "limit": limit, "offset": offset}
