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
import zlib
from array import array
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple, Protocol
from uuid import UUID

import orjson


def encode(data: Any) -> str:
    """Compact JSON: orjson (a token's event is encoded once per token), ``json`` for what
    orjson refuses, such as integers beyond 64 bits."""
    try:
        return orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
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
    def frame(self) -> bytes:
        """The event as one line of a packed log: its id, the length of its name, its name and
        its JSON (compact JSON never holds a raw newline; a name may hold anything)."""
        return f"{self.id} {len(self.event)} {self.event}{self.json}\n".encode()


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

    def __init__(self, run_id: UUID, on_close: Callable[[RunLog], None] | None = None):
        self.run_id = run_id
        self._events: list[Event] = []
        # Once packed, a closed log keeps its frames compressed, and where each event starts.
        self._packed: bytes | None = None
        self._starts: array[int] = array("I")
        self.closed = False
        self.closed_at: float | None = None
        self._changed = asyncio.Event()
        self._on_close = on_close

    def __len__(self) -> int:
        return len(self._events) if self._packed is None else len(self._starts) - 1

    @property
    def events(self) -> list[Event]:
        return self.since(0)

    @property
    def size(self) -> int:
        """Bytes its events take: the compressed frames once packed, their JSON until then."""
        if self._packed is not None:
            return len(self._packed)
        return sum(len(event.json) for event in self._events)

    def since(self, position: int) -> list[Event]:
        """The events after the first ``position`` ones."""
        if self._packed is None:
            return self._events[position:]
        if position >= len(self):
            return []
        stream = zlib.decompress(self._packed)
        return [
            _unpack(stream[self._starts[i] : self._starts[i + 1]])
            for i in range(position, len(self))
        ]

    def append(self, event: str, data: Any, text: str | None = None) -> Event:
        """Add an event; ``text`` is ``data`` already encoded, when the writer has it."""
        if self.closed:
            raise RuntimeError("the run's log is closed")
        item = Event(len(self._events) + 1, event, data)
        if text is not None:
            item.__dict__["json"] = text
        self._events.append(item)
        self._wake()
        return item

    def close(self) -> None:
        self.closed = True
        self.closed_at = time.monotonic()
        self._wake()
        on_close, self._on_close = self._on_close, None  # called once; a finished log holds none
        if on_close is not None:
            on_close(self)

    def pack(self) -> None:
        """Keep this closed log as compressed frames from now on.

        A retained log of Event objects and their dicts is hundreds of objects that every full
        garbage collection walks; with thousands of recent runs kept for late readers that made
        collections take tens of milliseconds, stalling every request. Packed, a log is two
        objects the collector ignores, and its token events (the same message id again and
        again) compress about tenfold: thousands of runs kept for ten minutes stay cheap.
        Reading a packed log (a late reader, a resume) decompresses it.
        """
        if self.closed and self._packed is None:
            starts = array("I", [0])
            frames = []
            for event in self._events:
                frames.append(event.frame)
                starts.append(starts[-1] + len(event.frame))
            self._packed = zlib.compress(b"".join(frames), 1)
            self._starts = starts
            self._events = []
            # Nobody waits on a closed log (every wait returns once it is closed): its own
            # asyncio.Event and that Event's deque were a third of what a packed log kept.
            self._changed = _SET

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
        if self.closed and position >= len(self):
            # Resumed at or past the end of a finished run: its ``end`` again, so every
            # stream of a finished run ends with it.
            position = len(self) - 1
        while True:
            if position < len(self):
                batch = self.since(position)
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
        while len(self) <= count and not self.closed:
            await self._changed.wait()


def _unpack(frame: bytes) -> Event:
    """The Event an ``Event.frame`` was made from."""
    number, length, rest = frame.decode()[:-1].split(" ", 2)
    name, text = rest[: int(length)], rest[int(length) :]
    event = Event(int(number), name, json.loads(text))
    event.__dict__["json"] = text  # what clients get is the stored text, not a re-encoding
    return event


# The wake-up of every packed log: already set, never waited on.
_SET = asyncio.Event()
_SET.set()

# How long a closed log stays as it was written before it is packed.
PACK_AFTER_SECONDS = 1.0


class Swept(NamedTuple):
    """What one expiry pass did: logs packed, and logs dropped."""

    packed: int
    dropped: int


class LogSizes(NamedTuple):
    """What the event logs of a process hold (``EventLogs.sizes``)."""

    live: int
    closed: int
    events: int
    size: int


class EventLogs:
    """All run logs of this process, dropped ``retention_seconds`` after their run ends."""

    def __init__(self, retention_seconds: float = 600, max_closed: int = 10_000):
        self.retention_seconds = retention_seconds
        self.max_closed = max_closed
        self._logs: dict[UUID, RunLog] = {}
        # Closed logs in the order they closed, so expiring looks only at the oldest ones:
        # scanning every log on each new run made each run cost more as the server got busier.
        self._closed: OrderedDict[UUID, RunLog] = OrderedDict()
        # Closed logs not packed yet: readers that were live when the run ended read them
        # as they are, for a few seconds, instead of decoding JSON again.
        self._unpacked: OrderedDict[UUID, RunLog] = OrderedDict()

    def create(self, run_id: UUID) -> RunLog:
        self._expire()
        log = RunLog(run_id, on_close=self._closed_now)
        self._logs[run_id] = log
        return log

    def _closed_now(self, log: RunLog) -> None:
        self._closed[log.run_id] = log
        self._unpacked[log.run_id] = log

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

    def sizes(self) -> LogSizes:
        """Logs of running runs and of finished ones kept, their events and bytes: one pass
        over them all, for a metrics scrape (at most ``max_closed`` finished ones)."""
        logs = list(self._logs.values())
        closed = sum(1 for log in logs if log.closed)
        return LogSizes(
            live=len(logs) - closed,
            closed=closed,
            events=sum(len(log) for log in logs),
            size=sum(log.size for log in logs),
        )

    def sweep(self) -> Swept:
        """Pack and drop the closed logs that are due, now.

        ``create`` and ``get`` do it too, but an idle process calls neither: without a periodic
        sweep (``graphs/runtime/liveness.py``) its finished runs' logs stayed until the next run.
        """
        return self._expire()

    def _expire(self) -> Swept:
        now = time.monotonic()
        packed = dropped = 0
        while self._unpacked:
            run_id, log = next(iter(self._unpacked.items()))
            assert log.closed_at is not None
            if log.closed_at > now - PACK_AFTER_SECONDS:
                break
            del self._unpacked[run_id]
            log.pack()
            packed += 1
        horizon = now - self.retention_seconds
        while self._closed:
            run_id, log = next(iter(self._closed.items()))
            assert log.closed_at is not None
            if len(self._closed) <= self.max_closed and log.closed_at >= horizon:
                break
            del self._closed[run_id]
            dropped += 1
            # A newer log may have replaced it under the same id (a rerun's end written here).
            if self._logs.get(run_id) is log:
                del self._logs[run_id]
        return Swept(packed, dropped)
