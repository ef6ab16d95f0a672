"""Starting the runs of due crons, in every process (API processes and ``switchboard worker``).

Each round claims the due crons no other process holds, moves each to its next tick and starts
their runs (``crons.claim_due``, ``crons.fire``); then it waits until the earliest cron it
knows of is due, or ``poll_seconds`` (``SWITCHBOARD_CRON_POLL_SECONDS``) to learn of crons made
or changed by other processes, whichever comes first. A cron made or changed here wakes it. So
a tick fires on time, not up to an interval late, and one process or ten make no difference to
when or how often. A process that is draining for shutdown claims nothing (its runs would be
refused), and ``aclose`` lets a round under way start the runs it claimed before it stops.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from api.services import crons as crons_service
from api.services.background import BackgroundJob

if TYPE_CHECKING:
    from api.state import AppState

log = logging.getLogger(__name__)

# Crons claimed per round; a full batch is followed by another round at once.
BATCH: Final = 100
# Waited at least between rounds while a cron is due (another process holds it for a moment).
MIN_WAIT_SECONDS: Final = 0.05


class CronScheduler(BackgroundJob):
    name = "cron-scheduler"
    drain_seconds = 10.0

    def __init__(self, state: AppState, *, poll_seconds: float) -> None:
        super().__init__(poll_seconds=poll_seconds)
        self.state = state
        self._until = poll_seconds

    def wait_seconds(self) -> float:
        return self._until

    async def step(self) -> bool:
        # Until this round knows better (and after a round that failed): the poll.
        self._until = self.poll_seconds
        if not self.state.runs.accepting:
            return False
        due, claimed = await crons_service.claim_due(self.state, limit=BATCH)
        for cron in due:
            await crons_service.fire(self.state, cron)
        if claimed == BATCH:
            return True  # more may be due
        seconds = await crons_service.seconds_until_due(self.state)
        if seconds is not None:
            self._until = min(self.poll_seconds, max(seconds, MIN_WAIT_SECONDS))
        return False
