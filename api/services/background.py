"""A job one task per process runs in the background: work until there is none, then wait for
a wake-up or ``poll_seconds`` (or what ``wait_seconds`` says), until ``aclose``.

Shared by the knowledge indexer, the memory re-indexer, the store's and the threads' TTL
sweepers, the webhook deliverer and the cron scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


class BackgroundJob:
    """Subclasses name the task and write ``step``: one unit of work, whether it found any."""

    name = "background-job"
    # ``True``: wait before the first step (a sweep that has nothing to do at start).
    wait_first = False
    # How long ``aclose`` lets a round under way end by itself before it cancels it (0: not at
    # all). For work that must not stop halfway: the cron scheduler starts the runs it claimed.
    drain_seconds = 0.0

    def __init__(self, *, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def step(self) -> bool:
        raise NotImplementedError

    def finished_round(self, steps: int) -> None:
        """Called after a round of steps that found work (``steps`` of them)."""

    def wait_seconds(self) -> float:
        """How long to wait after a round for a wake-up: ``poll_seconds`` unless the job knows
        better (when its next piece of work is due)."""
        return self.poll_seconds

    async def open(self) -> None:
        """Start the rounds; none with ``poll_seconds`` 0 (this process leaves the job to
        others, or a test drives it one ``step`` at a time)."""
        if self.poll_seconds > 0:
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def aclose(self) -> None:
        if self._task is None:
            return
        # A flag as well as the cancellation: a cancellation absorbed on its way through the
        # database driver once left the loop waiting for a wake-up that never came, and the
        # shutdown hung. The flag ends the loop at its next turn regardless.
        self._stopping = True
        self._wake.set()
        if self.drain_seconds > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.drain_seconds):
                    await asyncio.shield(self._task)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        if self.wait_first:
            await self._wait()
        while not self._stopping:
            self._wake.clear()
            steps = 0
            try:
                while not self._stopping and await self.step():
                    steps += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; trying again in %s s", self.name, self.poll_seconds)
            if steps:
                self.finished_round(steps)
            await self._wait()

    async def _wait(self) -> None:
        if self._stopping:
            return
        # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result when the
        # event is set as the task is cancelled, swallowing the cancellation.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.wait_seconds()):
                await self._wake.wait()
