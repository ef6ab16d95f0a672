"""The run runtime: agents answering in background tasks that write to per-run event logs.

``Runtime`` is the one door the API (and the worker) uses. Behind it, each part has one job:

- ``scheduling``: start, queue, claim and stop runs; the multitask strategies (Postgres decides).
- ``execution``: one run's lifecycle, driven by its input (a native message or a protocol run);
  what it streams goes to the run's ``EventWriter``, a wire format the API supplies.
- ``inputs``: what a run executes, as stored in ``runs.input``, validated when read back.
- ``liveness``: heartbeats, recovery of runs whose process died, the drain at shutdown.
- ``threads``: the compiled graphs and what is read of a chat's thread.
- ``graphs.events`` / ``graphs.redis_logs``: the event logs, in memory or in Redis Streams.

Alone (no Redis), every run executes in the process that received its message and its events
live in memory. With Redis, event logs are mirrored to Redis Streams and stop requests travel
on a control channel, so any process can read or stop any run; with ``execute=False`` as well,
the process only queues runs, and ``switchboard worker`` processes (``work()``) execute them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anyio

from graphs.events import EventLogs, EventSource
from graphs.knowledge import DEFAULT_EMBEDDING_MODEL, Knowledge, embedding_model_of
from graphs.runtime.execution import Executor
from graphs.runtime.inputs import NativeInput, ProtocolInput
from graphs.runtime.liveness import Liveness
from graphs.runtime.scheduling import Scheduler
from graphs.runtime.threads import Threads
from graphs.runtime.types import ChatBusy, ChatGone, ShuttingDown, WriterFactory
from storage import runs as runs_store
from storage.checkpoints import Checkpointer
from storage.db import PoolType
from storage.rows import AgentRow, ChatRow, RunRow
from storage.store import Store, open_store
from storage.types import ACTIVE, MultitaskStrategy, StopStatus

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from graphs.redis_logs import ControlBus

__all__ = ["ChatBusy", "ChatGone", "Runtime", "ShuttingDown", "open_runtime"]


class Runtime:
    """Starts runs, hands out their events, stops them, and reads their threads."""

    def __init__(
        self,
        pool: PoolType,
        checkpointer: Checkpointer,
        *,
        writers: WriterFactory,
        default_model: str,
        retention_seconds: float = 600,
        heartbeat_seconds: float = 5,
        stale_seconds: float = 30,
        shutdown_grace_seconds: float = 30,
        sweep_seconds: float = 5,
        release_memory: bool = True,
        cache_idle_seconds: float = 300,
        run_timeout_seconds: float = 0,
        redis: Redis | None = None,
        execute: bool = True,
        store: Store | None = None,
        knowledge: Knowledge | None = None,
    ):
        if not execute and redis is None:
            raise ValueError("a process that does not execute runs needs Redis to hand them over")
        self.pool = pool
        self.checkpointer = checkpointer
        # Long-term memory and the Agent Protocol store, reached by the graphs' tools.
        self.store = store
        self.threads = Threads(pool, checkpointer, default_model, store)
        self.bus: ControlBus | None = None
        self.logs: EventLogs
        if redis is not None:
            # Imported here: the Redis client costs a single process ~7 MiB it never uses.
            from graphs.redis_logs import ControlBus, RedisEventLogs

            self.logs = RedisEventLogs(redis, self._is_active, retention_seconds)
        else:
            self.logs = EventLogs(retention_seconds)
        self.executor = Executor(pool, self.threads, self.logs, writers, run_timeout_seconds)
        # What the knowledge_search tool of a run searches with (the run's context carries it).
        self.knowledge = knowledge or Knowledge(pool, DEFAULT_EMBEDDING_MODEL, hybrid=False)
        self.executor.knowledge = self.knowledge
        self.liveness = Liveness(
            pool, self.logs, self.executor.tasks, self._chat_is_free,
            heartbeat_seconds=heartbeat_seconds, stale_seconds=stale_seconds,
            shutdown_grace_seconds=shutdown_grace_seconds,
            sweep_seconds=sweep_seconds, release_memory=release_memory,
            forget_unused=lambda: checkpointer.forget_unused(cache_idle_seconds),
        )  # fmt: skip
        if redis is not None:
            self.bus = ControlBus(redis, self._on_control)
        self.scheduler = Scheduler(
            pool, self.threads, self.logs, self.executor, self.liveness,
            bus=self.bus, execute=execute,
        )  # fmt: skip
        self._background: set[asyncio.Task[Any]] = set()
        # Stop a run wherever it runs, wait for its end, optionally roll it back: the one way
        # every caller stops a run (cancel, strategies, disconnects); see Scheduler.stop.
        self.stop = self.scheduler.stop

    async def _chat_is_free(self, chat_id: str) -> None:
        await self.scheduler.chat_is_free(chat_id)

    def _on_control(self, message: dict[str, Any]) -> None:
        self.scheduler.on_control(message)

    async def _is_active(self, run_id: UUID) -> bool:
        async with self.pool.connection() as conn:
            run = await runs_store.get(conn, run_id)
        return run is not None and run["status"] in ACTIVE

    # Lifecycle.

    async def open(self) -> None:
        if self.bus is not None:
            await self.bus.open()
        await self.liveness.open()

    async def aclose(self) -> None:
        """Drain (grace period, then ``interrupted``) and stop the background tasks."""
        await self.liveness.aclose()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.bus is not None:
            await self.bus.aclose()
        await self.logs.aclose()

    @property
    def worker_id(self) -> str:
        return self.liveness.worker_id

    @property
    def accepting(self) -> bool:
        """Whether this process still takes new runs (false once it drains for shutdown)."""
        return self.liveness.accepting

    @property
    def shutdown(self) -> tuple[anyio.Event, float]:
        """The event set when the process starts shutting down, and the runs' grace period."""
        return self.liveness.shutdown_event, self.liveness.shutdown_grace_seconds

    async def recover(self) -> list[UUID]:
        """Mark interrupted the runs of dead processes now (it also runs on every heartbeat)."""
        return await self.liveness.recover()

    async def work(self, concurrency: int) -> None:
        """Claim and execute queued runs until shutdown (``switchboard worker``)."""
        await self.scheduler.work(concurrency)

    # Runs.

    async def start(
        self,
        *,
        chat: ChatRow,
        agent: AgentRow,
        user_id: UUID,
        content: str,
        profile: dict[str, Any] | None,
        strategy: MultitaskStrategy = "reject",
        checkpoint_id: str | None = None,
        message_id: str | None = None,
        model_name: str | None = None,
        webhook_url: str | None = None,
        resume: dict[str, Any] | None = None,
        parts: list[dict[str, Any]] | None = None,
    ) -> tuple[RunRow, EventSource]:
        """Record a run answering ``content`` and start it in the background (or queue it).

        With ``checkpoint_id`` the run starts from that checkpoint of the chat's thread (a new
        branch; the old one stays in its history). ``message_id`` is the id the message keeps
        (or takes). ``model_name`` runs the agent on that model instead of its own, for this run
        only; the run records it as its model.

        ``strategy`` says what happens when the chat already has an active run: ``reject``
        raises ``ChatBusy``; ``enqueue`` queues this run behind it; ``interrupt`` stops the
        running one (its checkpoints stay); ``rollback`` stops it and removes its checkpoints.
        Raises ``ShuttingDown`` once the server is draining.

        ``webhook_url`` (checked by the caller) is recorded with the run: when the run ends, a
        delivery of its final record to it is queued in the same transaction. ``resume`` (with
        an empty ``content``) resumes a turn paused for approval of its tool calls with these
        decisions (``graphs.approval.resume_value``); ``parts`` (checked) is a message with images.
        """
        run_input = NativeInput(
            content=content, profile=profile, checkpoint_id=checkpoint_id, message_id=message_id,
            model_name=model_name, resume=resume, parts=parts,
        )  # fmt: skip
        return await self.scheduler.start(chat, agent, user_id, run_input, strategy, webhook_url)

    async def start_protocol(
        self,
        *,
        chat: ChatRow,
        agent: AgentRow,
        user_id: UUID,
        request: ProtocolInput,
        profile: dict[str, Any] | None,
        strategy: MultitaskStrategy = "enqueue",
        webhook_url: str | None = None,
    ) -> tuple[RunRow, EventSource]:
        """A run of the Agent Protocol: ``request`` holds its input or command, stream modes,
        config, metadata, checkpoint and interrupt points (stored with the run); a webhook as
        in ``start``."""
        run_input = request.model_copy(update={"profile": profile})
        return await self.scheduler.start(chat, agent, user_id, run_input, strategy, webhook_url)

    async def events(self, run_id: UUID, *, active: bool) -> EventSource | None:
        """A reader of the run's events; ``None`` once they have expired (or never were here).
        ``active``: the run is pending or running, so its events may still be coming."""
        return await self.logs.open(run_id, active=active)

    async def stop_chat(self, chat_id: UUID, status: StopStatus = "cancelled") -> None:
        """Stop every active run of a chat and wait for their ends (before deleting it)."""
        await self.scheduler.stop_chat(chat_id, status)

    def watch_starts(self, chat_id: UUID | str) -> AbstractContextManager[asyncio.Event]:
        """While open, an event set whenever this process records a run of the chat (a
        thread's stream waits on it for the chat's next run; other processes' runs are found
        by asking Postgres)."""
        return self.scheduler.starts.watch(str(chat_id))

    def when_run_ends(self, callback: Callable[[RunRow], None]) -> None:
        """Call ``callback`` with each run of this process that ends (as it was created), once
        its end is recorded; runs that recovery ends, or other processes, are not told."""
        self.executor.ended.append(callback)

    def request_stop(self, run_id: UUID) -> None:
        """``stop`` from synchronous code (a client that disconnected), in the background."""
        self.background(self.stop(run_id, wait=None))

    def background(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` past the request that asked for it; stopped at shutdown."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def wait_ended(self, run_id: UUID, seconds: float) -> None:
        """Wait (at most ``seconds``) until the run's event log has its ``end``."""
        await self.scheduler.wait_ended(run_id, seconds)


async def open_runtime(
    settings: Any, pool: PoolType, *, writers: WriterFactory, execute: bool
) -> Runtime:
    """The runtime ``settings`` describe (a ``api.settings.Settings``), opened; ``writers``
    gives each run the wire format of the API it came from."""
    redis = None
    if settings.redis_url:
        from graphs.redis_logs import connect

        redis = connect(settings.redis_url)
        try:
            await redis.ping()
        except Exception as exc:
            await redis.aclose()
            # The URL may hold a password: name the failure, not the URL.
            reason = type(exc).__name__
            raise RuntimeError(f"Redis is unreachable at REDIS_URL ({reason})") from None
    knowledge = Knowledge(
        pool,
        embedding_model_of(settings),
        hybrid=bool(getattr(settings, "knowledge_hybrid", False)),
    )
    # Memories are embedded by the same model as knowledge.
    embedder = knowledge.embedder()
    runtime = Runtime(
        pool,
        Checkpointer(pool),
        writers=writers,
        default_model=settings.effective_default_model,
        retention_seconds=settings.run_log_retention_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
        stale_seconds=settings.stale_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
        sweep_seconds=settings.run_log_sweep_seconds,
        release_memory=settings.release_memory,
        cache_idle_seconds=settings.effective_cache_idle_seconds,
        run_timeout_seconds=settings.run_timeout_seconds,
        redis=redis,
        execute=execute,
        store=open_store(pool, embedder, model=embedder.name, dims=embedder.dims),
        knowledge=knowledge,
    )
    await runtime.open()
    return runtime
