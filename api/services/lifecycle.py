"""Thread lifecycle: a thread's time to live, the sweep of expired threads, prune by hand.

A thread (a chat, to either API) expires ``ttl`` minutes after it last changed (created,
patched, renamed, or a run on it ended); one without a ttl of its own after the server's
default (``SWITCHBOARD_THREAD_TTL_MINUTES``; unset: never). What happens then is its strategy:
``delete`` removes the thread with its runs and checkpoints, ``keep_latest`` keeps the thread and
only its latest checkpoint (its state reads the same). A thread with an active run is left for a
later sweep, once it is idle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from api.errors import NotFound
from api.services import chats as chats_service
from api.state import AppState
from storage import lifecycle as lifecycle_store
from storage.db import Conn
from storage.lifecycle import Strategy

log = logging.getLogger(__name__)

PRUNE_NOT_FOUND = "At least one thread not found or not authorized"


@dataclass
class Swept:
    deleted: int = 0
    kept_latest: int = 0

    @property
    def total(self) -> int:
        return self.deleted + self.kept_latest


def ttl_json(row: lifecycle_store.TtlRow, default_minutes: float | None, default: Strategy) -> Any:
    """The official ``ttl`` of a thread (``GET /threads/{id}?include=ttl``): null when it never
    expires."""
    minutes = row["ttl_minutes"]
    strategy = row["ttl_strategy"] or default
    expires_at: datetime | None = row["expires_at"]
    if minutes is None:
        if default_minutes is None:
            return None
        minutes = default_minutes
        expires_at = row["updated_at"] + timedelta(minutes=default_minutes)
    return {"strategy": strategy, "ttl_minutes": minutes, "expires_at": expires_at}


async def set_ttl(
    state: AppState, user_id: UUID, chat_id: UUID, minutes: float, strategy: Strategy
) -> None:
    async with state.pool.connection() as conn:
        if not await lifecycle_store.set_ttl(conn, user_id, chat_id, minutes, strategy):
            raise NotFound("Thread not found")


async def get_ttl(state: AppState, user_id: UUID, chat_id: UUID) -> Any:
    async with state.pool.connection() as conn:
        row = await lifecycle_store.get_ttl(conn, user_id, chat_id)
    if row is None:
        raise NotFound("Thread not found")
    settings = state.settings
    return ttl_json(row, settings.thread_ttl_minutes, settings.thread_ttl_strategy)


async def prune(state: AppState, user_id: UUID, thread_ids: list[UUID], strategy: Strategy) -> int:
    """Prune the user's threads now; how many were. Every id must name a thread of theirs,
    else nothing happens (404, as the official server answers with auth on: another user's
    thread and none at all look the same). ``delete`` is ``DELETE /threads/{id}`` for each (an
    active run is stopped first); ``keep_latest`` skips a thread while it has an active run."""
    ids = list(dict.fromkeys(thread_ids))
    async with state.pool.connection() as conn:
        owned = await lifecycle_store.owned_ids(conn, user_id, ids)
    if len(owned) != len(ids):
        raise NotFound(PRUNE_NOT_FOUND)
    pruned = 0
    for chat_id in ids:
        if strategy == "delete":
            try:
                await chats_service.delete(state, user_id, chat_id)
            except NotFound:
                continue  # deleted meanwhile
            pruned += 1
            continue
        async with state.pool.connection() as conn, conn.transaction():
            if not await lifecycle_store.lock_idle_owned(conn, user_id, chat_id):
                continue
            await state.runs.threads.keep_latest_in(conn, chat_id)
        pruned += 1
    return pruned


async def sweep(state: AppState, *, limit: int) -> Swept:
    """One sweep by this process: up to ``limit`` expired idle threads, each in a transaction
    of its own. Only one process sweeps at a time (a session advisory lock): another that
    finds it taken sweeps nothing this time."""
    settings = state.settings
    minutes, default = settings.thread_ttl_minutes, settings.thread_ttl_strategy
    swept = Swept()
    async with state.pool.connection() as conn:
        if not await lifecycle_store.try_sweep_lock(conn):
            return swept
        released = False
        try:
            rows = await lifecycle_store.expired(
                conn, limit=limit, default_minutes=minutes, default_strategy=default
            )
            for row in rows:
                try:
                    await _sweep_one(state, conn, row["id"], minutes, default, swept)
                except Exception:
                    # One thread that cannot be swept (its checkpoints unreadable) must not
                    # keep every later one from being swept: it is tried again next round.
                    log.exception("could not sweep expired thread %s", row["id"])
        finally:
            try:
                await lifecycle_store.release_sweep_lock(conn)
                released = True
            finally:
                if not released:
                    # A session lock left on a pooled connection would stop every later sweep
                    # of every process: the connection goes, and the lock with it.
                    await conn.close()
    return swept


async def _sweep_one(
    state: AppState,
    conn: Conn,
    chat_id: UUID,
    minutes: float | None,
    default: Strategy,
    swept: Swept,
) -> None:
    async with conn.transaction():
        strategy = await lifecycle_store.lock_expired(
            conn, chat_id, default_minutes=minutes, default_strategy=default
        )
        if strategy is None:
            return  # a run started, or it changed, meanwhile
        if strategy == "delete":
            await lifecycle_store.delete_chat(conn, chat_id)
            await state.runs.threads.delete_in(conn, chat_id)
        else:
            await state.runs.threads.keep_latest_in(conn, chat_id)
            await lifecycle_store.mark_pruned(conn, chat_id)
    # Counted once committed.
    if strategy == "delete":
        swept.deleted += 1
    else:
        swept.kept_latest += 1
