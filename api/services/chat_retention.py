"""Chat retention (``SWITCHBOARD_CHAT_RETENTION_DAYS``; unset: chats are kept forever) and the
vacuum of orphaned checkpoints (``switchboard db vacuum-orphans``).

A chat is idle since its ``updated_at``: its creation, a rename, archive or ttl change, and the
end of each run on it (every message is a run). Reading it does not count, and a chat with a
pending or running run is never idle. Every API process and worker runs a ``RetentionSweeper``;
each batch is one transaction under an advisory lock, so one process deletes at a time and the
others skip that round (storage/retention.py). This is a ceiling for every chat, on top of the
per-thread ttl of api/services/lifecycle.py: a chat's own longer ttl does not keep it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

from api.services.background import BackgroundJob
from storage import retention as retention_store
from storage.db import PoolType

if TYPE_CHECKING:
    from api.state import AppState

log = logging.getLogger(__name__)

# Chats per transaction: a round that deletes this many goes on at once with the next.
BATCH = 100
# Orphaned threads per transaction of the vacuum.
ORPHAN_BATCH = 500


class RetentionSweeper(BackgroundJob):
    name = "chat-retention-sweeper"
    wait_first = True

    def __init__(self, state: AppState, *, days: float | None, interval: float) -> None:
        # No retention, or ``interval`` 0: this process never sweeps (no rounds start).
        super().__init__(poll_seconds=interval if days is not None else 0)
        self.state = state
        self.days = days

    async def step(self) -> bool:
        return len(await self.sweep()) >= BATCH

    async def sweep(self, limit: int = BATCH) -> list[UUID]:
        """One batch: up to ``limit`` chats idle past the retention deleted with their runs and
        checkpoints, in one transaction; their ids. None when another process holds the lock."""
        if self.days is None:
            return []
        async with self.state.pool.connection() as conn, conn.transaction():
            if not await retention_store.try_retention_lock(conn):
                return []
            ids = await retention_store.lock_idle(conn, days=self.days, limit=limit)
            if not ids:
                return []
            deleted = await retention_store.delete_chats(conn, ids)
            for chat_id in deleted:
                await self.state.runs.threads.delete_in(conn, chat_id)
        log.info("chat retention: deleted %d chats idle for over %g days", len(deleted), self.days)
        return deleted


@dataclass
class Vacuumed:
    """What ``vacuum_orphans`` found (and, unless a dry run, deleted): threads, rows per table."""

    threads: int = 0
    rows: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(retention_store.CHECKPOINT_TABLES, 0)
    )


async def vacuum_orphans(pool: PoolType, *, dry_run: bool) -> Vacuumed:
    """Checkpoint rows whose thread has no chat: counted, and deleted unless ``dry_run``, a
    batch of threads per transaction."""
    found = Vacuumed()
    async with pool.connection() as conn:
        threads = await retention_store.orphan_threads(conn)
        for start in range(0, len(threads), ORPHAN_BATCH):
            batch = threads[start : start + ORPHAN_BATCH]
            if dry_run:
                counts = await retention_store.count_orphan_rows(conn, batch)
            else:
                async with conn.transaction():
                    counts = await retention_store.delete_orphan_rows(conn, batch)
            for table, n in counts.items():
                found.rows[table] += n
    found.threads = len(threads)
    return found
