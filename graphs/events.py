"""Run event logs: every event a run emits, readable from any point while and after it runs.

The run writes; HTTP responses only read. A reader that starts late (or reconnects with
``Last-Event-ID``) replays what it missed from the log, then follows the live tail. Event ids
are run-scoped and strictly increasing, starting at 1.

``EventLogs`` is the in-process backend: a bounded number of logs in memory, each kept for a
while after its run ends. ``graphs/redis_logs.py`` adds Redis Streams behind the same
interface, so a run executed by one process can be read through any other.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol
from uuid import UUID


def encode(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Event:
    id: int
    event: str
    data: dict[str, Any]

    @cached_property
    def json(self) -> str:
        """``data`` as compact JSON, encoded once however many readers and sinks want it."""
        return encode(self.data)

    @cached_property
    def sse(self) -> bytes:
        """The event as ``text/event-stream`` bytes (compact JSON never holds a raw newline)."""
        return f"id: {self.id}\r\nevent: {self.event}\r\ndata: {self.json}\r\n\r\n".encode()


class EventSource(Protocol):
    """What a reader of a run's events needs: the events after an id, live until ``end``."""

    def read(self, after: int = 0) -> AsyncIterator[Event]: ...

    def read_batches(self, after: int = 0) -> AsyncIterator[list[Event]]:
        """The same events, in lists of whatever is available at once (fewer writes)."""
        ...


async def read_all(source: EventSource) -> list[Event]:
    """Every event of a run, once it has ended."""
    return [event async for event in source.read(0)]


class RunLog:
    """The append-only event log of one run."""

    def __init__(self, run_id: UUID):
        self.run_id = run_id
        self.events: list[Event] = []
        self.closed = False
        self.closed_at: float | None = None
        self._changed = asyncio.Event()

    def append(self, event: str, data: dict[str, Any]) -> Event:
        if self.closed:
            raise RuntimeError("the run's log is closed")
        item = Event(len(self.events) + 1, event, data)
        self.events.append(item)
        self._wake()
        return item

    def close(self) -> None:
        self.closed = True
        self.closed_at = time.monotonic()
        self._wake()

    def _wake(self) -> None:
        # Readers wait on the current Event; swapping it wakes them all without a lock.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def read(self, after: int = 0) -> AsyncIterator[Event]:
        """Events with ids greater than ``after``, live until the log closes."""
        async for batch in self.read_batches(after):
            for event in batch:
                yield event

    async def read_batches(self, after: int = 0) -> AsyncIterator[list[Event]]:
        position = max(after, 0)
        while True:
            if position < len(self.events):
                batch = self.events[position:]
                position += len(batch)
                yield batch
                continue
            if self.closed:
                return
            await self._changed.wait()

    async def wait_closed(self) -> None:
        while not self.closed:
            await self._changed.wait()

    async def wait_beyond(self, count: int) -> None:
        """Return once the log holds more than ``count`` events, or is closed."""
        while len(self.events) <= count and not self.closed:
            await self._changed.wait()


class EventLogs:
    """All run logs of this process, dropped ``retention_seconds`` after their run ends."""

    def __init__(self, retention_seconds: float = 600, max_closed: int = 10_000):
        self.retention_seconds = retention_seconds
        self.max_closed = max_closed
        self._logs: OrderedDict[UUID, RunLog] = OrderedDict()

    def create(self, run_id: UUID) -> RunLog:
        self._expire()
        log = RunLog(run_id)
        self._logs[run_id] = log
        return log

    def get(self, run_id: UUID) -> RunLog | None:
        """The log of a run this process executes (or executed recently)."""
        self._expire()
        return self._logs.get(run_id)

    async def open(self, run_id: UUID, *, active: bool) -> EventSource | None:
        """A reader of the run's events; ``None`` when they are gone (or never were here).

        ``active`` says the run is pending or running, so its events may still be coming.
        """
        return self.get(run_id)

    async def end_orphan(self, run_id: UUID, status: str) -> None:
        """Write ``end`` for a run whose process died, so its readers stop waiting.

        In memory, a dead process took its logs with it: nothing to do.
        """

    async def aclose(self) -> None:
        """Flush and release what the backend holds."""

    def _expire(self) -> None:
        now = time.monotonic()
        closed = [
            run_id
            for run_id, log in self._logs.items()
            if log.closed_at is not None and now - log.closed_at > self.retention_seconds
        ]
        for run_id in closed:
            del self._logs[run_id]
        excess = sum(1 for log in self._logs.values() if log.closed) - self.max_closed
        for run_id in [r for r, log in self._logs.items() if log.closed][: max(excess, 0)]:
            del self._logs[run_id]
