"""Crons, the Agent Protocol's scheduled runs: a user's schedules whose ticks start runs.

A cron belongs to the user who made it, like a chat: another user's cron is a 404 and never
shows in their searches. A thread cron (``POST /threads/{id}/runs/crons``) runs on that thread
of the user's and goes when the thread goes; a stateless one (``POST /runs/crons``) runs on a
new thread each tick, which is deleted once the run ended unless ``on_run_completed`` is
``keep``, as on the official server. Every run a cron starts is an ordinary run of the Agent
Protocol (``protocol_runs.start``): it shows in the run APIs and streams like any other.

When: each process's scheduler (``cron_scheduler``) claims the due crons in one statement
(``FOR UPDATE SKIP LOCKED``) and moves each one's ``next_run_date`` to its schedule's next tick
after the database's *now*, in the same transaction, then starts their runs. So a tick fires
once however many processes look, and ticks missed while nothing ran fire once, late, not once
each. A tick is claimed before its run starts: a process that dies in between loses that one
tick (at most once, never twice).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter
from pydantic import ValidationError

from api.errors import AppError, InvalidInput, NotFound
from api.schemas.common import MAX_METADATA_BYTES, json_size
from api.schemas.crons import RUN_FIELDS, CronCount, CronFields, CronPatch, CronSearch
from api.schemas.protocol_runs import RunCreate
from api.services import images as images_service
from api.services import protocol_runs
from api.services.agents import assistant_ref, find_assistant
from api.state import AppState
from api.wire.protocol import known_total
from graphs.models import UnknownModel
from graphs.runtime import ChatBusy, ShuttingDown
from storage import agents as agents_store
from storage import crons as crons_store
from storage.quotas import QuotaExceeded
from storage.rows import CronRow, DueCronRow, RunRow

log = logging.getLogger(__name__)

CRON_NOT_FOUND: Final = "Cron not found"
THREAD_NOT_FOUND: Final = "Thread not found"


def next_tick(schedule: str, timezone: str | None, after: datetime) -> datetime | None:
    """The schedule's first tick after ``after``, read in ``timezone`` (UTC when null); ``None``
    if it never comes (``0 0 30 2 *``)."""
    local = after.astimezone(ZoneInfo(timezone or "UTC"))
    try:
        tick: datetime = croniter(schedule, local).get_next(datetime)
    except CroniterBadDateError:
        return None
    return tick.astimezone(UTC)


def _next_run(
    schedule: str, timezone: str | None, end_time: datetime | None, after: datetime
) -> datetime | None:
    """When the cron runs next after ``after``: its next tick, unless none is left before
    ``end_time``."""
    if end_time is not None and end_time <= after:
        return None
    tick = next_tick(schedule, timezone, after)
    if tick is None or (end_time is not None and tick > end_time):
        return None
    return tick


def _checked_next_run(
    schedule: str, timezone: str | None, end_time: datetime | None, now: datetime
) -> datetime | None:
    """``_next_run`` for a cron being written: a 422 for an end already past or a schedule that
    never comes, which would make a cron that never runs."""
    if end_time is not None and end_time <= now:
        raise InvalidInput("end_time has passed: give one in the future", code="end_time_passed")
    if next_tick(schedule, timezone, now) is None:
        raise InvalidInput(
            f"The schedule {schedule!r} never comes (no such day)", code="schedule_never_fires"
        )
    return _next_run(schedule, timezone, end_time, now)


def cron_json(cron: CronRow) -> dict[str, Any]:
    """A cron as the Agent Protocol shows it (``api.schemas.crons.Cron``)."""
    return {
        "cron_id": cron["id"],
        "assistant_id": cron["agent_id"],
        "thread_id": cron["chat_id"],
        "on_run_completed": cron["on_run_completed"],
        "end_time": cron["end_time"],
        "schedule": cron["schedule"],
        "timezone": cron["timezone"],
        "created_at": cron["created_at"],
        "updated_at": cron["updated_at"],
        "user_id": str(cron["user_id"]),
        "payload": cron["payload"],
        "next_run_date": cron["next_run_date"],
        "metadata": cron["metadata"],
        "enabled": cron["enabled"],
    }


def _zone(timezone: Any) -> str | None:
    return None if timezone is None else str(timezone)


async def create(
    state: AppState, user_id: UUID, body: CronFields, thread_id: UUID | None = None
) -> CronRow:
    """A new cron of the user's: on their thread ``thread_id``, or stateless without one."""
    timezone = _zone(body.timezone)
    next_run = _checked_next_run(body.schedule, timezone, body.end_time, datetime.now(UTC))
    async with state.pool.connection() as conn:
        agent = await find_assistant(conn, body.assistant_id)
        # Its runs would each be refused for them: refused now, once.
        await images_service.check_protocol_images(state, agent, body.input)
        cron = await crons_store.insert(
            conn,
            user_id=user_id,
            agent_id=agent["id"],
            chat_id=thread_id,
            schedule=body.schedule,
            timezone=timezone,
            end_time=body.end_time,
            enabled=body.enabled,
            on_run_completed=None if thread_id else getattr(body, "on_run_completed", "delete"),
            payload={"assistant_id": str(agent["id"]), **body.run_fields()},
            metadata=body.metadata or {},
            next_run_date=next_run,
        )
    if cron is None:
        raise NotFound(THREAD_NOT_FOUND)
    # This process's scheduler waits for the earliest tick it knew of: this one may be sooner.
    state.crons.wake()
    return cron


async def get(state: AppState, user_id: UUID, cron_id: UUID) -> CronRow:
    async with state.pool.connection() as conn:
        cron = await crons_store.get_owned(conn, cron_id, user_id)
    if cron is None:
        raise NotFound(CRON_NOT_FOUND)
    return cron


async def update(state: AppState, user_id: UUID, cron_id: UUID, body: CronPatch) -> CronRow:
    """Change the fields ``body`` gives. A new schedule, time zone, end or a re-enabled cron
    runs next at the first tick after now (ticks skipped while disabled are not made up)."""
    given = body.model_fields_set
    now = datetime.now(UTC)
    async with state.pool.connection() as conn, conn.transaction():
        cron = await crons_store.get_owned(conn, cron_id, user_id, lock=True)
        if cron is None:
            raise NotFound(CRON_NOT_FOUND)
        changed: CronRow = {**cron}
        if body.schedule is not None:
            changed["schedule"] = body.schedule
        if body.timezone is not None:
            changed["timezone"] = _zone(body.timezone)
        if "end_time" in given:  # null: no end
            changed["end_time"] = body.end_time
        if body.enabled is not None:
            changed["enabled"] = body.enabled
        if body.on_run_completed is not None and cron["chat_id"] is None:
            changed["on_run_completed"] = body.on_run_completed
        if body.metadata is not None:
            changed["metadata"] = {**cron["metadata"], **body.metadata}
            if json_size(changed["metadata"]) > MAX_METADATA_BYTES:
                raise InvalidInput(
                    f"The cron's metadata would be over {MAX_METADATA_BYTES} bytes as JSON",
                    code="metadata_too_large",
                )
        changed["payload"] = {**cron["payload"], **body.run_fields()}
        if body.input is not None:
            agent = await agents_store.get(conn, cron["agent_id"])
            if agent is not None:
                await images_service.check_protocol_images(state, agent, body.input)
        retimed = (
            changed["schedule"] != cron["schedule"]
            or changed["timezone"] != cron["timezone"]
            or changed["end_time"] != cron["end_time"]
            or (changed["enabled"] and not cron["enabled"])
        )
        if retimed:
            changed["next_run_date"] = _checked_next_run(
                changed["schedule"], changed["timezone"], changed["end_time"], now
            )
        if changed == cron:
            return cron  # nothing to change: not even updated_at
        updated = await crons_store.update_owned(conn, changed)
    assert updated is not None  # locked above
    state.crons.wake()
    return updated


async def delete(state: AppState, user_id: UUID, cron_id: UUID) -> None:
    async with state.pool.connection() as conn:
        if not await crons_store.delete_owned(conn, cron_id, user_id):
            raise NotFound(CRON_NOT_FOUND)


async def search(
    state: AppState, user_id: UUID, body: CronSearch
) -> tuple[list[dict[str, Any]], int]:
    """A page of the user's crons (only theirs, whatever the filters; with ``select``, only
    those fields of each) and how many match."""
    agent = assistant_ref(body.assistant_id) if body.assistant_id else None
    async with state.pool.connection() as conn:
        rows = await crons_store.search(
            conn,
            user_id,
            agent=agent,
            chat_id=body.thread_id,
            enabled=body.enabled,
            metadata=body.metadata,
            sort_by=body.sort_by,
            descending=body.sort_order == "desc",
            limit=body.limit,
            offset=body.offset,
        )
        total = known_total(len(rows), body.offset, body.limit)
        if total is None:
            total = await crons_store.count(
                conn, user_id, agent=agent, chat_id=body.thread_id, metadata=body.metadata,
                enabled=body.enabled,
            )  # fmt: skip
    page = [cron_json(row) for row in rows]
    if body.select:
        page = [{key: cron[key] for key in body.select} for cron in page]
    return page, total


async def count(state: AppState, user_id: UUID, body: CronCount) -> int:
    async with state.pool.connection() as conn:
        return await crons_store.count(
            conn,
            user_id,
            agent=assistant_ref(body.assistant_id) if body.assistant_id else None,
            chat_id=body.thread_id,
            metadata=body.metadata,
        )


# The scheduler's side: claim what is due, start its runs.


async def claim_due(state: AppState, *, limit: int) -> tuple[list[DueCronRow], int]:
    """Claim up to ``limit`` due crons and move each to its next tick, in one transaction:
    (the crons whose runs to start now, how many were claimed). A claimed cron whose
    ``end_time`` has passed starts nothing and is left with no next run."""
    async with state.pool.connection() as conn, conn.transaction():
        due = await crons_store.claim_due(conn, limit=limit)
        moved = [
            (
                cron["id"],
                _next_run(cron["schedule"], cron["timezone"], cron["end_time"], cron["now"]),
            )
            for cron in due
        ]
        await crons_store.advance(conn, moved)
    live = [cron for cron in due if cron["end_time"] is None or cron["end_time"] > cron["now"]]
    return live, len(due)


async def seconds_until_due(state: AppState) -> float | None:
    """How long until the earliest enabled cron is due (negative: it is); ``None``: none is."""
    async with state.pool.connection() as conn:
        return await crons_store.seconds_until_due(conn)


# What a tick that starts no run is logged with: refusals are the cron's business (its thread
# is archived or busy, its assistant retired), not the server's.
_REFUSALS = (AppError, ChatBusy, ShuttingDown, UnknownModel, ValidationError, QuotaExceeded)


async def fire(state: AppState, cron: CronRow) -> RunRow | None:
    """Start the run of one tick of ``cron``, as its owner would with ``POST /threads/{id}/runs``
    (or ``POST /runs`` for a stateless cron); ``None`` when it could not start."""
    try:
        body = RunCreate.model_validate(
            {
                **{key: cron["payload"][key] for key in ("assistant_id", *RUN_FIELDS)
                   if key in cron["payload"]},
                "metadata": cron["metadata"],
                "on_completion": cron["on_run_completed"] or "delete",
            }
        )  # fmt: skip
        run, _, _ = await protocol_runs.start(state, cron["user_id"], cron["chat_id"], body)
    except _REFUSALS as exc:
        reason = getattr(exc, "code", None) or type(exc).__name__
        log.warning("cron %s started no run at its tick: %s", cron["id"], reason)
        return None
    except Exception:
        # The database, say: this tick is lost, the batch's other crons still get theirs.
        log.exception("cron %s could not start its run", cron["id"])
        return None
    log.info("cron %s started run %s on thread %s", cron["id"], run["id"], run["chat_id"])
    return run
