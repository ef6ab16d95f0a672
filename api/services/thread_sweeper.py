"""Sweeping expired threads (a ``ttl`` on the thread, or the server's default) in the
background, every ``interval`` seconds (``SWITCHBOARD_THREAD_SWEEP_SECONDS``; 0: never).

Every API process and every worker runs one; a sweep takes a Postgres advisory lock first, so
one process sweeps at a time and the others skip that round (api/services/lifecycle.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from api.services import lifecycle
from api.services.background import BackgroundJob

if TYPE_CHECKING:
    from api.state import AppState

log = logging.getLogger(__name__)

# Threads per round: a round that finds this many goes on at once with the next.
BATCH = 100


class ThreadSweeper(BackgroundJob):
    name = "thread-ttl-sweeper"
    wait_first = True

    def __init__(self, state: AppState, *, interval: float) -> None:
        # ``interval`` 0: never swept by this process (the base class starts no rounds).
        super().__init__(poll_seconds=interval)
        self.state = state

    async def step(self) -> bool:
        swept = await self.sweep()
        return swept.total >= BATCH

    async def sweep(self, limit: int = BATCH) -> lifecycle.Swept:
        """One round: the expired idle threads, up to ``limit``, as their strategies say."""
        swept = await lifecycle.sweep(self.state, limit=limit)
        if swept.total:
            log.info(
                "expired threads: %d deleted, %d pruned to their latest checkpoint",
                swept.deleted,
                swept.kept_latest,
            )
        return swept
