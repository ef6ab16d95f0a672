"""Deleting expired store items (a ``ttl`` given to ``PUT /store/items``) in the background.

Reads already omit them; this deletes them (and their vectors) every ``interval`` seconds, one
task per API process (``SWITCHBOARD_STORE_SWEEP_SECONDS``; 0: never). Several processes
sweeping at once each delete what has expired, which is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from api.state import AppState

log = logging.getLogger(__name__)


class StoreSweeper:
    def __init__(self, state: AppState, *, interval: float) -> None:
        self.state = state
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._loop(), name="store-ttl-sweeper")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def sweep(self) -> int:
        """Delete the items that have expired; how many."""
        deleted = await self.state.store.sweep_ttl()
        if deleted:
            log.info("deleted %d expired store items", deleted)
        return deleted

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweeping expired store items failed")
