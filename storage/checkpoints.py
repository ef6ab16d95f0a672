"""The LangGraph Postgres checkpointer, plus what its Postgres saver leaves unimplemented.

LangGraph owns the ``checkpoint*`` tables; the only SQL here is the deletion of one run's
checkpoints (``adelete_for_runs``, part of the saver interface) that the multitask strategy
``rollback`` needs. It relies on each run stamping ``run_id`` into its checkpoints' metadata.

Rebuilding a thread's messages (a delta channel) decodes its last snapshot and the writes
since: every turn, and every read, decoded the whole conversation again, so a turn cost more
the longer the chat. ``CachingSerializer`` keeps the messages of those blobs, by content, so
each blob is decoded at most once per process while it stays warm.

Two things the saver does for a single shared connection cost every turn when it sits on a
pool, as here: an ``asyncio.Lock`` around every statement (so one process did its checkpoint
I/O one statement at a time, whatever the number of runs; langgraph issue #7259), and a thread
hop to encode each write and decode each read. ``Checkpointer`` takes a pooled connection per
operation without the lock; ``graphs.patches.install`` makes the saver encode and decode on the
event loop and shortens its walk back to a snapshot (``DELTA_PAGE_SIZE``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import DeltaChannelHistory, get_checkpoint_id
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

# Threads whose latest values are kept warm, and how many list items (messages) at most in all.
WARM_THREADS = 512
WARM_ITEMS = 100_000
# Decoded blobs kept, counted by the size of their encoded bytes.
CACHE_BYTES = 64 * 2**20
# Below this, decoding costs about what hashing the blob would.
CACHE_MIN_BYTES = 256


# A full copy of a thread's messages is stored every this many updates of the channel
# (``graphs/build.py``); between copies, checkpoints store only what each step added.
SNAPSHOT_EVERY = 64
# Rebuilding a delta channel walks back from the checkpoint to the last snapshot, one page of
# checkpoints at a time, and the saver's page is 1,024 rows: every turn of a long chat read
# (and decoded into dicts) a thousand checkpoints to use the few dozen since the snapshot.
# A page a little over the distance between snapshots ends nearly every walk in one page; a
# longer walk takes more pages, with the same result.
DELTA_PAGE_SIZE = 2 * SNAPSHOT_EVERY


def _items(values: dict[str, Any]) -> int:
    return sum(len(v) for v in values.values() if isinstance(v, list)) + 1


def _messages_only(value: Any) -> bool:
    """Whether ``value`` is what the messages channel stores: a snapshot, a list of messages
    or one message."""
    if isinstance(value, _DeltaSnapshot):
        value = value.value
    if isinstance(value, BaseMessage):
        return True
    return isinstance(value, list) and all(isinstance(m, BaseMessage) for m in value)


class _Decoded:
    """Decoded blobs by key, least recently used first, within ``CACHE_BYTES``.

    One object, so that the serializer's clones (LangGraph copies it per allowlist) share the
    entries *and* their byte count."""

    def __init__(self) -> None:
        # key -> (value, encoded size, last used on the monotonic clock)
        self.entries: OrderedDict[tuple[Any, ...], tuple[Any, int, float]] = OrderedDict()
        self.bytes = 0
        self.lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Any | None:
        with self.lock:
            hit = self.entries.get(key)
            if hit is None:
                return None
            self.entries[key] = (hit[0], hit[1], time.monotonic())
            self.entries.move_to_end(key)
            return hit[0]

    def put(self, key: tuple[Any, ...], value: Any, size: int) -> None:
        with self.lock:
            if key in self.entries:
                return
            self.entries[key] = (value, size, time.monotonic())
            self.bytes += size
            while self.bytes > CACHE_BYTES and self.entries:
                _, (_, dropped, _) = self.entries.popitem(last=False)
                self.bytes -= dropped

    def forget_unused(self, since: float) -> int:
        """Drop what was last used before ``since`` (monotonic); how many entries went."""
        forgotten = 0
        with self.lock:
            while self.entries:
                key, (_, size, used) = next(iter(self.entries.items()))
                if used >= since:
                    break
                del self.entries[key]
                self.bytes -= size
                forgotten += 1
        return forgotten


class CachingSerializer(JsonPlusSerializer):
    """``JsonPlusSerializer`` that remembers which messages a blob holds.

    Messages are the one part of a thread that grows, and every turn and every read rebuilds
    them from a snapshot blob plus the writes since. Blobs of messages are cached by content
    when they are written and when they are first read, so each is decoded at most once while
    it stays warm. The decoded messages are shared by every later rebuild, which is safe because
    LangGraph's reducers (``add_messages``) build new lists and never change a stored message.
    Anything else is decoded as usual. The lock is for savers that still encode in threads.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decoded = _Decoded()

    def _key(self, type_: str, blob: bytes) -> tuple[Any, ...]:
        # Clones made for other allowlists share the cache: whose decoder it was is in the key.
        # SHA-1 names content, not secrets, here; it is twice as fast as BLAKE2 on a snapshot.
        digest = hashlib.sha1(blob, usedforsecurity=False).digest()
        return (id(self._unpack_ext_hook), type_, len(blob), digest)

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        type_, blob = super().dumps_typed(obj)
        if len(blob) >= CACHE_MIN_BYTES and _messages_only(obj):
            self.decoded.put(self._key(type_, blob), obj, len(blob))
        return type_, blob

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        type_, blob = data
        if not isinstance(blob, bytes) or len(blob) < CACHE_MIN_BYTES:
            return super().loads_typed(data)
        key = self._key(type_, blob)
        hit = self.decoded.get(key)
        if hit is not None:
            return hit
        value = super().loads_typed(data)
        if _messages_only(value):
            self.decoded.put(key, value, len(blob))
        return value


# A thread (``%(thread)s``), or every thread when it is null: a fork's copied checkpoints
# carry the run ids of the original's runs, and are not the original's to remove.
DELETE_WRITES_FOR_RUNS = """
DELETE FROM checkpoint_writes w USING checkpoints c
WHERE c.metadata->>'run_id' = ANY(%(ids)s)
  AND (%(thread)s::text IS NULL OR c.thread_id = %(thread)s::text)
  AND w.thread_id = c.thread_id AND w.checkpoint_ns = c.checkpoint_ns
  AND w.checkpoint_id = c.checkpoint_id
"""
DELETE_CHECKPOINTS_FOR_RUNS = """
DELETE FROM checkpoints WHERE metadata->>'run_id' = ANY(%(ids)s)
  AND (%(thread)s::text IS NULL OR thread_id = %(thread)s::text)
"""

# Copying a thread (``acopy_thread``). ``%(ids)s`` null: every checkpoint (all namespaces);
# otherwise those root checkpoints only. Ids stay the same: they are unique within a thread,
# and a fork's history then names the checkpoints of its original. (LangGraph keeps the
# thread id out of checkpoint metadata, so metadata is copied as it is.)
# A root checkpoint and its ancestors, newest first.
CHAIN = """
WITH RECURSIVE chain AS (
    SELECT checkpoint_id, parent_checkpoint_id, 0 AS depth FROM checkpoints
    WHERE thread_id = %(source)s AND checkpoint_ns = '' AND checkpoint_id = %(upto)s
  UNION ALL
    SELECT c.checkpoint_id, c.parent_checkpoint_id, chain.depth + 1
    FROM checkpoints c JOIN chain ON c.thread_id = %(source)s AND c.checkpoint_ns = ''
                                 AND c.checkpoint_id = chain.parent_checkpoint_id
)
SELECT checkpoint_id FROM chain ORDER BY depth
"""
_COPIED = """
  WHERE thread_id = %(source)s
    AND (%(ids)s::text[] IS NULL OR (checkpoint_ns = '' AND checkpoint_id = ANY(%(ids)s::text[])))
"""
COPY_CHECKPOINTS = f"""
INSERT INTO checkpoints
    (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata)
SELECT %(target)s, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata
FROM checkpoints {_COPIED}
"""
# The channel values the copied checkpoints reference (a fork leaves later ones behind).
COPY_BLOBS = f"""
INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
SELECT %(target)s, b.checkpoint_ns, b.channel, b.version, b.type, b.blob
FROM checkpoint_blobs b
WHERE b.thread_id = %(source)s
  AND (%(ids)s::text[] IS NULL OR (b.checkpoint_ns = '' AND (b.channel, b.version) IN (
      SELECT v.key, v.value
      FROM checkpoints c, jsonb_each_text(c.checkpoint -> 'channel_versions') v
      {_COPIED.replace("thread_id", "c.thread_id").replace("checkpoint_", "c.checkpoint_")})))
"""
# Writes belong to the step after their checkpoint: a fork copies those of the checkpoints
# before its last, so it continues from that last one as if nothing had run from it yet.
COPY_WRITES = """
INSERT INTO checkpoint_writes
    (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob)
SELECT %(target)s, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob
FROM checkpoint_writes
WHERE thread_id = %(source)s
  AND (%(ids)s::text[] IS NULL OR (checkpoint_ns = '' AND checkpoint_id = ANY(%(ids)s::text[])
                                   AND checkpoint_id <> %(upto)s))
"""


# A thread's lifecycle (storage/lifecycle.py): all of it goes, or all but its latest root
# checkpoint. The saver's own ``aprune("keep_latest")`` refuses threads with a delta channel,
# whose latest checkpoint holds only what its step added: here that checkpoint is made a
# snapshot first (each delta channel's whole value stored as LangGraph stores one, a
# ``_DeltaSnapshot`` blob behind an inline ``true``), so it reads the same with nothing before
# it. Subgraph namespaces are left as they are (agents here have none).
DELETE_THREAD = (
    "DELETE FROM checkpoint_writes WHERE thread_id = %(thread)s",
    "DELETE FROM checkpoint_blobs WHERE thread_id = %(thread)s",
    "DELETE FROM checkpoints WHERE thread_id = %(thread)s",
)
LATEST_ROOT = """
SELECT checkpoint_id, checkpoint, metadata FROM checkpoints
WHERE thread_id = %(thread)s AND checkpoint_ns = ''
ORDER BY checkpoint_id DESC LIMIT 1
"""
COUNT_ROOT = (
    "SELECT count(*) AS n FROM checkpoints WHERE thread_id = %(thread)s AND checkpoint_ns = ''"
)
UPSERT_SNAPSHOT_BLOB = """
INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
VALUES (%(thread)s, '', %(channel)s, %(version)s, %(type)s, %(blob)s)
ON CONFLICT (thread_id, checkpoint_ns, channel, version)
DO UPDATE SET type = EXCLUDED.type, blob = EXCLUDED.blob
"""
KEEP_ONLY = (
    """DELETE FROM checkpoint_writes
       WHERE thread_id = %(thread)s AND checkpoint_ns = '' AND checkpoint_id <> %(head)s""",
    """DELETE FROM checkpoints
       WHERE thread_id = %(thread)s AND checkpoint_ns = '' AND checkpoint_id <> %(head)s""",
    """UPDATE checkpoints SET parent_checkpoint_id = NULL, checkpoint = %(checkpoint)s,
              metadata = %(metadata)s
       WHERE thread_id = %(thread)s AND checkpoint_ns = '' AND checkpoint_id = %(head)s""",
    # The channel values the one checkpoint left does not name.
    """DELETE FROM checkpoint_blobs b
       WHERE b.thread_id = %(thread)s AND b.checkpoint_ns = ''
         AND (b.channel, b.version) NOT IN (
             SELECT v.key, v.value FROM jsonb_each_text(%(checkpoint)s -> 'channel_versions') v)""",
)
COUNTERS = "counters_since_delta_snapshot"


class Checkpointer(AsyncPostgresSaver):
    """``AsyncPostgresSaver`` on the shared pool, without its per-saver lock, that can also
    forget everything given runs wrote.

    The upstream lock guards a single connection shared by every caller. On a pool each
    operation has a connection of its own, so the lock only made runs queue behind each
    other's round trips. Order within a thread needs no lock: LangGraph writes a run's
    checkpoints one after the other and waits for its writes before the run ends.

    Rebuilding a thread's messages at the start of every run (the walk back to the last
    snapshot, then the replay of the writes since) costs a query and a merge over the whole
    conversation. ``remember`` keeps the values a run left at its last checkpoint; when the next
    run (or read) of the thread starts from that same checkpoint, they are the rebuilt values.
    A checkpoint never changes once written, so a value found under its id is right; any other
    checkpoint (written by another process, or after a rollback) is rebuilt as usual.

    Channel blobs are left in place by ``adelete_for_runs``: they are keyed by version and only
    read through the checkpoints that remain, which never reference the removed versions.
    """

    def __init__(self, conn: Any, serde: JsonPlusSerializer | None = None) -> None:
        super().__init__(conn, serde=serde or CachingSerializer())
        # thread id -> (checkpoint id, channel values there, last used on the monotonic clock);
        # one entry per thread, least recently used first.
        self._warm: OrderedDict[str, tuple[str, dict[str, Any], float]] = OrderedDict()
        self._warm_items = 0

    def remember(self, config: dict[str, Any], values: dict[str, Any]) -> None:
        """Keep ``values``, the channel values at the checkpoint ``config`` names."""
        configurable = config.get("configurable") or {}
        thread_id, checkpoint_id = configurable.get("thread_id"), configurable.get("checkpoint_id")
        if not thread_id or not checkpoint_id or configurable.get("checkpoint_ns"):
            return
        self._forget(str(thread_id))
        self._warm[str(thread_id)] = (checkpoint_id, dict(values), time.monotonic())
        self._warm_items += _items(values)
        while self._warm and (len(self._warm) > WARM_THREADS or self._warm_items > WARM_ITEMS):
            self._forget(next(iter(self._warm)))

    def _forget(self, thread_id: str) -> None:
        dropped = self._warm.pop(thread_id, None)
        if dropped is not None:
            self._warm_items -= _items(dropped[1])

    def forget_unused(self, idle_seconds: float) -> int:
        """Forget the warm values and decoded blobs no run or read has used for
        ``idle_seconds``: after a load they are what pins the heap the load grew (bench/
        BENCHMARKS.md, "Soak"). Returns how many entries went."""
        since = time.monotonic() - idle_seconds
        forgotten = 0
        while self._warm:
            thread_id, (_, _, used) = next(iter(self._warm.items()))
            if used >= since:
                break
            self._forget(thread_id)
            forgotten += 1
        if isinstance(self.serde, CachingSerializer):
            forgotten += self.serde.decoded.forget_unused(since)
        return forgotten

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        configurable = config["configurable"]
        warm = self._warm.get(str(configurable["thread_id"]))
        if (
            warm is not None
            and not configurable.get("checkpoint_ns")
            and warm[0] == get_checkpoint_id(config)
            and all(channel in warm[1] for channel in channels)
        ):
            self._warm[str(configurable["thread_id"])] = (*warm[:2], time.monotonic())
            self._warm.move_to_end(str(configurable["thread_id"]))
            # The values themselves as the seed, nothing to replay on top.
            return {channel: {"seed": warm[1][channel], "writes": []} for channel in channels}
        return await super().aget_delta_channel_history(config=config, channels=channels)

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        if not isinstance(self.conn, AsyncConnectionPool):
            async with super()._cursor(pipeline=pipeline) as cur:
                yield cur
            return
        async with self.conn.connection() as conn:
            if pipeline:
                # One round trip for the statements of a write; as one transaction where
                # libpq has no pipeline mode.
                batch = conn.pipeline() if self.supports_pipeline else conn.transaction()
                async with batch, conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            else:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur

    async def adelete_thread(self, thread_id: str) -> None:
        self._forget(str(thread_id))
        await super().adelete_thread(thread_id)

    async def adelete_for_runs(
        self, run_ids: Sequence[str], *, thread_id: str | None = None
    ) -> None:
        """Every checkpoint (and its writes) the runs wrote; in ``thread_id`` only, if given."""
        params = {"ids": [str(r) for r in run_ids], "thread": thread_id}
        if thread_id is not None:
            self._forget(thread_id)
        async with self._cursor(pipeline=True) as cur:
            await cur.execute(DELETE_WRITES_FOR_RUNS, params)
            await cur.execute(DELETE_CHECKPOINTS_FOR_RUNS, params)

    async def achain(self, thread_id: str, checkpoint_id: str) -> list[str]:
        """The ids of a root checkpoint and its ancestors, newest first (empty: no such
        checkpoint). A thread with branches holds other checkpoints beside these."""
        async with self._cursor() as cur:
            await cur.execute(CHAIN, {"source": thread_id, "upto": checkpoint_id})
            return [row["checkpoint_id"] for row in await cur.fetchall()]

    async def adelete_thread_in(self, conn: AsyncConnection[Any], thread_id: str) -> None:
        """``adelete_thread`` as part of the caller's transaction on ``conn``."""
        self._forget(thread_id)
        for statement in DELETE_THREAD:
            await conn.execute(statement, {"thread": thread_id})

    async def akeep_latest_in(
        self, conn: AsyncConnection[Any], thread_id: str, deltas: Mapping[str, Any]
    ) -> int:
        """In the caller's transaction on ``conn`` (which holds the thread still: no run may
        write meanwhile), keep only the thread's latest root checkpoint. ``deltas``: the value
        of each delta channel at that checkpoint (the thread's state), stored there as a
        snapshot. How many checkpoints went (0: none, or nothing but the latest)."""
        cur = await conn.execute(LATEST_ROOT, {"thread": thread_id})
        head = await cur.fetchone()
        if head is None:
            return 0
        cur = await conn.execute(COUNT_ROOT, {"thread": thread_id})
        counted = await cur.fetchone()
        older = int(counted["n"]) - 1 if counted else 0
        checkpoint = dict(head["checkpoint"])
        values = dict(checkpoint.get("channel_values") or {})
        versions = checkpoint.get("channel_versions") or {}
        metadata = dict(head["metadata"] or {})
        counters = dict(metadata.get(COUNTERS) or {})
        for channel, value in deltas.items():
            if channel not in versions:
                continue
            type_, blob = self.serde.dumps_typed(_DeltaSnapshot(value))
            await conn.execute(
                UPSERT_SNAPSHOT_BLOB,
                {
                    "thread": thread_id,
                    "channel": channel,
                    "version": str(versions[channel]),
                    "type": type_,
                    "blob": blob,
                },
            )
            values[channel] = True
            counters.pop(channel, None)
        checkpoint["channel_values"] = values
        if counters:
            metadata[COUNTERS] = counters
        else:
            metadata.pop(COUNTERS, None)
        self._forget(thread_id)
        params = {
            "thread": thread_id,
            "head": head["checkpoint_id"],
            "checkpoint": Jsonb(checkpoint),
            "metadata": Jsonb(metadata),
        }
        for statement in KEEP_ONLY:
            await conn.execute(statement, params)
        return older

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, channel value and write of a thread into an empty one."""
        await self._copy(source_thread_id, target_thread_id, None, None)

    async def afork_thread(self, source: str, target: str, upto: str) -> bool:
        """Copy into the empty thread ``target`` the root checkpoint ``upto`` of ``source``
        and its ancestors, with what they need to be read (every ancestor, as delta channels
        are rebuilt from them). ``False`` when ``upto`` is no checkpoint of ``source``."""
        ids = await self.achain(source, upto)
        if not ids:
            return False
        await self._copy(source, target, ids, upto)
        return True

    async def _copy(
        self, source: str, target: str, ids: list[str] | None, upto: str | None
    ) -> None:
        params = {"source": source, "target": target, "ids": ids, "upto": upto}
        pool = cast(AsyncConnectionPool, self.conn)
        async with pool.connection() as conn, conn.transaction():
            for statement in (COPY_CHECKPOINTS, COPY_BLOBS, COPY_WRITES):
                await conn.execute(statement, params)
