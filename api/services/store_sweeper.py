"""Deleting expired store items (a ``ttl`` given to ``PUT /store/items``) in the background.

Reads already omit them; this deletes them (and their vectors) every ``interval`` seconds, one
task per API process (``SWITCHBOARD_STORE_SWEEP_SECONDS``; 0: never). Several processes
sweeping at once each delete what has expired, which is harmless.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from api.services.background import BackgroundJob

if TYPE_CHECKING:
    from api.state import AppState

log = logging.getLogger(__name__)


class StoreSweeper(BackgroundJob):
    name = "store-ttl-sweeper"
    wait_first = True

    def __init__(self, state: AppState, *, interval: float) -> None:
        # ``interval`` 0: never swept by this process (the base class starts no rounds).
        super().__init__(poll_seconds=interval)
        self.state = state

    async def step(self) -> bool:
        await self.sweep()
        return False  # one sweep per interval

    async def sweep(self) -> int:
        """Delete the items that have expired; how many."""
        deleted = await self.state.store.sweep_ttl()
        if deleted:
            log.info("deleted %d expired store items", deleted)
        return deleted
