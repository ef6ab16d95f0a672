"""Runs, for both APIs: ownership, their events, stopping, listing and deleting them.

A run belongs to the user who started it; reading another user's run is a 404 like a run that
does not exist. The Agent Protocol names a run by its thread as well, and a run of another
thread is a 404 too.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from api.errors import INVALID_TOKEN, Conflict, NotFound, Unauthorized
from api.services import webhooks as webhooks_service
from api.services.chats import get_owned as get_owned_chat
from api.state import AppState
from graphs.events import EventSource
from storage import runs as runs_store
from storage import users as users_store
from storage.rows import DeliveryStateRow, RunRow
from storage.types import ACTIVE, RunStatus, StopStatus

EXPIRED = "Run not found, or its events have expired"


async def get_owned(
    state: AppState, user_id: UUID, run_id: UUID, *, chat_id: UUID | None = None
) -> RunRow:
    """The run if ``user_id`` started it (in ``chat_id``, when given); 404 otherwise."""
    async with state.pool.connection() as conn:
        run = await runs_store.get_owned(conn, run_id, user_id)
    if run is None or (chat_id is not None and run["chat_id"] != chat_id):
        raise NotFound("Run not found")
    return run


async def read(
    state: AppState, user_id: UUID, run_id: UUID, *, chat_id: UUID | None = None
) -> tuple[RunRow, DeliveryStateRow | None]:
    """The run as ``get_owned`` finds it, with its webhook delivery (``None`` without one, or
    before the run has ended)."""
    run = await get_owned(state, user_id, run_id, chat_id=chat_id)
    found = await webhooks_service.deliveries(state, [run])
    return run, found.get(run["id"])


async def events(state: AppState, run: RunRow) -> EventSource | None:
    """A reader of the run's events; ``None`` once they have expired."""
    return await state.runs.events(run["id"], active=run["status"] in ACTIVE)


async def owned_events(
    state: AppState, user_id: UUID, run_id: UUID, *, chat_id: UUID | None = None
) -> tuple[RunRow, EventSource]:
    """The run and its events; 404 when it is not the user's or its events have expired, 401
    when the user is gone (a run's stream takes a token without reading its user first)."""
    try:
        run = await get_owned(state, user_id, run_id, chat_id=chat_id)
    except NotFound:
        async with state.pool.connection() as conn:
            if await users_store.get(conn, user_id) is None:
                raise Unauthorized(INVALID_TOKEN) from None
        raise NotFound(EXPIRED) from None
    source = await events(state, run)
    if source is None:
        raise NotFound(EXPIRED)
    return run, source


async def stop(
    state: AppState,
    user_id: UUID,
    run_id: UUID,
    status: StopStatus,
    *,
    chat_id: UUID | None = None,
    wait: float | None = 5,
    rollback: bool = False,
) -> tuple[RunRow, bool]:
    """Stop the user's run if it is active; the run as it is afterwards, and whether this
    stopped it (``False`` when it had ended already, or ended otherwise meanwhile)."""
    run = await get_owned(state, user_id, run_id, chat_id=chat_id)
    if run["status"] not in ACTIVE:
        return run, False
    await state.runs.stop(run_id, status, wait=wait, rollback=rollback)
    run = await get_owned(state, user_id, run_id, chat_id=chat_id)
    return run, run["status"] == status


async def list_for_chat(
    state: AppState,
    user_id: UUID,
    chat_id: UUID,
    *,
    limit: int,
    offset: int,
    statuses: Sequence[RunStatus] | None = None,
    not_found: str = "Chat not found",
) -> tuple[list[RunRow], int, dict[UUID, DeliveryStateRow]]:
    """A page of the chat's runs, newest first (only those in ``statuses``, when given), how
    many there are in all, and the webhook deliveries of those that have one."""
    async with state.pool.connection() as conn:
        await get_owned_chat(conn, chat_id, user_id, not_found=not_found)
        rows, total = await runs_store.list_for_chat(
            conn, chat_id, limit=limit, offset=offset, statuses=statuses
        )
    return rows, total, await webhooks_service.deliveries(state, rows)


async def delete_ended(state: AppState, user_id: UUID, run_id: UUID, chat_id: UUID) -> None:
    """Delete a finished run's record (its checkpoints stay in the thread)."""
    run = await get_owned(state, user_id, run_id, chat_id=chat_id)
    if run["status"] in ACTIVE:
        raise Conflict("The run is still active; cancel it first")
    async with state.pool.connection() as conn:
        await runs_store.delete(conn, run_id)
