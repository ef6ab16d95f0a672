"""Agent Protocol crons: ``/runs/crons…`` and ``/threads/{id}/runs/crons``.

Each tick of a cron's schedule starts an ordinary run, on the cron's thread or on a new one.
The paths are literal where ``/runs/{run_id}`` has a parameter, so they never reach it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from api.deps import CurrentUserId, State
from api.openapi import PAGINATED, errors
from api.schemas.crons import Cron, CronCount, CronCreate, CronPatch, CronSearch, ThreadCronCreate
from api.services import crons as service
from api.wire.protocol import json_response, pagination_headers

router = APIRouter(tags=["agent protocol: crons"])

# A schedule that never comes, an end already past: each a 422 with a code of its own.
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "Invalid input: `validation_error` lists the problems; "
        "`schedule_never_fires`: no day matches the schedule (`0 0 30 2 *`); "
        "`end_time_passed`: `end_time` is not in the future",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
}


@router.post("/runs/crons", response_model=Cron, responses={**errors(404), **_WRITE_ERRORS})
async def create_cron(body: CronCreate, user_id: CurrentUserId, state: State) -> JSONResponse:
    """A cron whose every tick starts a run on a new thread (deleted once the run ended, unless
    `on_run_completed` is `keep`). The first run starts at the first tick after now."""
    return json_response(service.cron_json(await service.create(state, user_id, body)))


@router.post(
    "/threads/{thread_id}/runs/crons",
    response_model=Cron,
    responses=_WRITE_ERRORS,
)
async def create_thread_cron(
    thread_id: UUID, body: ThreadCronCreate, user_id: CurrentUserId, state: State
) -> JSONResponse:
    """A cron whose every tick starts a run on this thread of yours (a busy thread: as
    `multitask_strategy` says). It goes when the thread goes."""
    cron = await service.create(state, user_id, body, thread_id=thread_id)
    return json_response(service.cron_json(cron))


@router.post(
    "/runs/crons/search",
    response_model=list[Cron],
    response_description="Your crons; with `select`, each has only the fields selected",
    responses={200: PAGINATED},
)
async def search_crons(body: CronSearch, user_id: CurrentUserId, state: State) -> JSONResponse:
    """Your crons (never anyone else's, whatever the filters), newest first by default;
    `X-Pagination-Total` says how many match, `X-Pagination-Next` the next page's offset."""
    page, total = await service.search(state, user_id, body)
    return json_response(page, pagination_headers(body.offset, body.limit, len(page), total))


@router.post("/runs/crons/count", response_model=int)
async def count_crons(body: CronCount, user_id: CurrentUserId, state: State) -> JSONResponse:
    return json_response(await service.count(state, user_id, body))


@router.get("/runs/crons/{cron_id}", response_model=Cron)
async def get_cron(cron_id: UUID, user_id: CurrentUserId, state: State) -> JSONResponse:
    return json_response(service.cron_json(await service.get(state, user_id, cron_id)))


@router.patch("/runs/crons/{cron_id}", response_model=Cron, responses=_WRITE_ERRORS)
async def patch_cron(
    cron_id: UUID, body: CronPatch, user_id: CurrentUserId, state: State
) -> JSONResponse:
    """Change what the body gives. A new schedule, time zone or end, or a cron enabled again,
    runs next at the first tick after now."""
    cron = await service.update(state, user_id, cron_id, body)
    return json_response(service.cron_json(cron))


@router.delete("/runs/crons/{cron_id}", status_code=204, response_class=Response)
async def delete_cron(cron_id: UUID, user_id: CurrentUserId, state: State) -> Response:
    """Delete the cron; the runs it started stay."""
    await service.delete(state, user_id, cron_id)
    return Response(status_code=204)
