"""``/runs``: the record of each answer, and its event stream (live or replayed)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.deps import CurrentUser, Pool, State
from api.errors import NotFound
from api.schemas.common import Page
from api.schemas.messages import RunOut
from api.services.chats import get_owned
from api.sse import run_stream
from storage import runs as runs_store

router = APIRouter(tags=["runs"])


@router.get("/runs/{run_id}", response_model=RunOut)
async def get_run(run_id: UUID, user: CurrentUser, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        run = await runs_store.get_owned(conn, run_id, user["id"])
    if run is None:
        raise NotFound("Run not found")
    return run


@router.get("/runs/{run_id}/stream")
async def stream_run(
    run_id: UUID,
    user: CurrentUser,
    state: State,
    last_event_id: Annotated[int | None, Query(ge=0)] = None,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", include_in_schema=False)
    ] = None,
) -> Response:
    """The run's events after `Last-Event-ID` (header or query), then the live tail."""
    async with state.pool.connection() as conn:
        run = await runs_store.get_owned(conn, run_id, user["id"])
    run_log = None
    if run is not None:
        active = run["status"] in ("pending", "running")
        run_log = await state.runs.events(run_id, active=active)
    if run_log is None:
        raise NotFound("Run not found, or its events have expired")
    after = last_event_id or 0
    if last_event_id is None and last_event_id_header and last_event_id_header.isdigit():
        after = int(last_event_id_header)
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
    async with state.pool.connection() as conn:
        run = await runs_store.get_owned(conn, run_id, user["id"])
    if run is None:
        raise NotFound("Run not found")
    cancelled = False
    if run["status"] in ("pending", "running"):
        await state.runs.stop(run_id, "cancelled", wait=5)
        async with state.pool.connection() as conn:
            run = await runs_store.get_owned(conn, run_id, user["id"])
        assert run is not None
        cancelled = run["status"] == "cancelled"
    return {"run_id": run_id, "status": run["status"], "cancelled": cancelled}


@router.get("/chats/{chat_id}/runs", response_model=Page[RunOut])
async def list_runs(
    chat_id: UUID,
    user: CurrentUser,
    pool: Pool,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """The chat's runs, newest first."""
    async with pool.connection() as conn:
        await get_owned(conn, chat_id, user["id"])
        rows, total = await runs_store.list_for_chat(conn, chat_id, limit=limit, offset=offset)
    return {"items": rows, "total": total, "limit": limit, "offset": offset}
