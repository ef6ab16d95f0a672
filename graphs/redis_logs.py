"""Run event logs in Redis Streams, and the control channel between processes.

One stream per run, ``switchboard:run:{id}:events``. Entry ids are ``0-<event id>``, so our own
run-scoped integer ids are the stream ids and ``Last-Event-ID: n`` is ``XREAD … 0-n``: nothing
to translate, nothing to look up. The process executing a run keeps its in-memory ``RunLog``
(its own readers stay in memory) and a flusher copies the log to Redis in order, batching what
piled up since the last round trip. Once ``end`` is written the stream expires after the
retention period; until then it carries a long safety TTL, in case its process dies.

The control channel (pub/sub, ``switchboard:control``) carries what one process must tell the
others: stop a run (cancel, interrupt, rollback), a run was queued, a chat was freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError

from graphs.events import Event, EventLogs, EventSource, RunLog

log = logging.getLogger(__name__)

CONTROL_CHANNEL = "switchboard:control"
# Until ``end``, a stream outlives any run; after it, the retention period applies.
SAFETY_TTL_SECONDS = 24 * 3600
READ_BLOCK_MS = 5_000
READ_BATCH = 512


def stream_key(run_id: UUID | str) -> str:
    return f"switchboard:run:{run_id}:events"


# The client decodes replies (``decode_responses=True``), so everything Redis answers is ``str``;
# redis-py types its replies as ``bytes | str`` whatever the client, hence the casts below. A
# stream entry is ``(id, fields)``; entries of ours are never deleted, so fields are never None.
StreamEntry = tuple[str, dict[str, str]]
# An ``XREAD`` of one stream (RESP2): ``[[key, entries]]``, or None when nothing came in time.
XReadReply = list[tuple[str, list[StreamEntry]]]


def connect(url: str) -> Redis:
    return Redis.from_url(url, decode_responses=True, health_check_interval=30)


def _event(entry_id: str, fields: dict[str, str]) -> Event:
    event = Event(int(entry_id.partition("-")[2]), fields["e"], json.loads(fields["d"]))
    # The stored JSON is what a client gets: no need to encode it again.
    event.__dict__["json"] = fields["d"]
    return event


class RedisReader:
    """Reads one run's stream from Redis: the backlog after an id, then the live tail."""

    def __init__(
        self, redis: Redis, run_id: UUID, still_active: Callable[[], Awaitable[bool]]
    ) -> None:
        self.redis = redis
        self.key = stream_key(run_id)
        self.still_active = still_active

    async def read(self, after: int = 0) -> AsyncIterator[Event]:
        async for batch in self.read_batches(after):
            for event in batch:
                yield event

    async def read_batches(self, after: int = 0) -> AsyncIterator[list[Event]]:
        position = f"0-{max(after, 0)}"
        if after > 0 and (end := await self._end_at_or_before(after)) is not None:
            # Resumed at or past the end of a finished run: its ``end`` again.
            yield [end]
            return
        while True:
            reply = cast(
                XReadReply | None,
                await self.redis.xread({self.key: position}, count=READ_BATCH, block=READ_BLOCK_MS),
            )
            if not reply:
                # A quiet run, or one whose events will never come (expired, or its process
                # died before writing anything and recovery has not run yet): ask Postgres.
                if not await self.redis.exists(self.key) and not await self.still_active():
                    return
                if after > 0 and (end := await self._end_at_or_before(after)) is not None:
                    # The run ended (its ``end`` written since) before the id resumed from.
                    yield [end]
                    return
                continue
            batch = []
            for entry_id, fields in reply[0][1]:
                event = _event(entry_id, fields)
                batch.append(event)
                if event.event == "end":
                    yield batch
                    return
                position = entry_id
            yield batch

    async def _end_at_or_before(self, after: int) -> Event | None:
        """The run's ``end`` when it is written and its id is at most ``after``."""
        last = cast(list[StreamEntry], await self.redis.xrevrange(self.key, count=1))
        if not last or last[0][1]["e"] != "end":
            return None
        end = _event(*last[0])
        return end if end.id <= after else None


class RedisEventLogs(EventLogs):
    """In-memory logs for the runs this process executes, mirrored to Redis for everyone."""

    def __init__(
        self,
        redis: Redis,
        is_active: Callable[[UUID], Awaitable[bool]],
        retention_seconds: float = 600,
        max_closed: int = 10_000,
    ):
        super().__init__(retention_seconds, max_closed)
        self.redis = redis
        self.is_active = is_active
        self._flushers: set[asyncio.Task[None]] = set()

    def create(self, run_id: UUID) -> RunLog:
        run_log = super().create(run_id)
        task = asyncio.create_task(self._flush(run_log), name=f"flush-{run_id}")
        self._flushers.add(task)
        task.add_done_callback(self._flushers.discard)
        return run_log

    async def open(self, run_id: UUID, *, active: bool) -> EventSource | None:
        local = self.get(run_id)
        if local is not None:
            return local
        if not active and not await self.redis.exists(stream_key(run_id)):
            return None
        return RedisReader(self.redis, run_id, lambda: self.is_active(run_id))

    async def _flush(self, run_log: RunLog) -> None:
        key = stream_key(run_log.run_id)
        written = 0
        failures = 0
        while True:
            await run_log.wait_beyond(written)
            batch = run_log.since(written)
            if not batch and run_log.closed:
                return
            pipe = self.redis.pipeline(transaction=False)
            for event in batch:
                pipe.xadd(key, {"e": event.event, "d": event.json}, id=f"0-{event.id}")
            done = run_log.closed and written + len(batch) == len(run_log)
            ttl = self.retention_seconds if done else SAFETY_TTL_SECONDS
            pipe.expire(key, int(ttl))
            try:
                await pipe.execute()
            except RedisError:
                failures += 1
                log.warning("could not copy run %s's events to Redis", run_log.run_id)
                if failures >= 20:
                    log.error("giving up on run %s's Redis stream", run_log.run_id)
                    return
                await asyncio.sleep(min(0.05 * 2**failures, 2.0))
                # Part of the batch may have landed: continue after what Redis holds.
                written = await self._last_id(key)
                continue
            failures = 0
            written += len(batch)
            if done:
                return

    async def _last_id(self, key: str) -> int:
        with contextlib.suppress(RedisError):
            last = cast(list[StreamEntry], await self.redis.xrevrange(key, count=1))
            if last:
                return int(last[0][0].partition("-")[2])
        return 0

    async def end_orphan(self, run_id: UUID, status: str) -> None:
        key = stream_key(run_id)
        try:
            last = cast(list[StreamEntry], await self.redis.xrevrange(key, count=1))
            if last and last[0][1].get("e") == "end":
                return
            next_id = int(last[0][0].partition("-")[2]) + 1 if last else 1
            data = json.dumps({"status": status, "usage": {}})
            pipe = self.redis.pipeline(transaction=False)
            pipe.xadd(key, {"e": "end", "d": data}, id=f"0-{next_id}")
            pipe.expire(key, int(self.retention_seconds))
            await pipe.execute()
        except RedisError:
            log.warning("could not end the event stream of run %s", run_id)

    async def aclose(self) -> None:
        # Let every flusher write what its run produced (the drain has ended the runs).
        if self._flushers:
            _, pending = await asyncio.wait(set(self._flushers), timeout=5)
            for task in pending:
                task.cancel()
        await self.redis.aclose()


class ControlBus:
    """Messages between processes over Redis pub/sub; ``handler`` gets each decoded message."""

    def __init__(self, redis: Redis, handler: Callable[[dict[str, Any]], None]):
        self.redis = redis
        self.handler = handler
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def open(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="control-bus")
        # Subscribed before the process serves: a cancel sent after that is never missed.
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def publish(self, message: dict[str, Any]) -> None:
        try:
            await self.redis.publish(CONTROL_CHANNEL, json.dumps(message))
        except RedisError:
            log.warning("could not publish %s on the control channel", message.get("op"))

    async def _listen(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(CONTROL_CHANNEL)
                    self._ready.set()
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        try:
                            self.handler(json.loads(message["data"]))
                        except Exception:
                            log.exception("bad control message")
            except asyncio.CancelledError:
                raise
            except RedisError:
                log.warning("control channel lost; reconnecting")
                await asyncio.sleep(1)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
